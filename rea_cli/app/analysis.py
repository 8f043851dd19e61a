"""What analysts ask of a workspace: read-only queries of its insights DB (the published
analyst copy when there is one; never a lock on the agent's writable file for long)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rea_cli.errors import UsageError
from rea_cli.fsutil import write_bytes_atomic
from rea_cli.workspace import Workspace

if TYPE_CHECKING:
    import pyarrow as pa

# duckdb and pyarrow are imported by the functions that use them, not when `rea` starts


def _source(ws: Workspace) -> Path:
    from rea_cli.insights import readable_db

    return readable_db(ws.db_path, ws.analyst_db_path)


def query(ws: Workspace, sql: str) -> pa.Table:
    """Rows of one read-only SELECT."""
    from rea_cli.insights import run_sql

    return run_sql(_source(ws), sql)


def effects(
    ws: Workspace,
    *,
    model_family: str | None = None,
    dataset: str | None = None,
    hypothesis: str | None = None,
) -> list[dict[str, Any]]:
    """Gain of each hypothesis over its paired baseline, across campaigns."""
    from rea_cli.insights import hypothesis_effects

    return hypothesis_effects(
        _source(ws), model_family=model_family, dataset=dataset, hypothesis=hypothesis
    )


def export(ws: Workspace, directory: Path, *, force: bool = False) -> list[Path]:
    """Every analyst table and view as DIR/<name>.parquet (checked before anything is
    written: never onto a file of rea, never over a file without force)."""
    from rea_cli.insights import export_parquet

    return export_parquet(_source(ws), directory, check=lambda p: check_output(ws, p, force=force))


def check_output(ws: Workspace, path: Path, *, force: bool) -> Path:
    """The file an analyst's output may be written to: never one of rea's own (the DB, the
    analyst copy, the settings, a campaign's files), never an existing file without force."""
    target = path.expanduser().resolve()
    what = _rea_file(ws, target)
    if what:
        raise UsageError(
            f"refusing to write onto {path}: it is {what} of the workspace; choose another file"
        )
    if target.is_dir():
        raise UsageError(f"{path} is a folder; give the name of a file to write")
    if target.exists() and not force:
        raise UsageError(f"{path} exists; pass --force to overwrite it")
    return target


def _rea_file(ws: Workspace, target: Path) -> str | None:
    """What `target` is to rea (None when it is not one of its files)."""
    root = ws.root.resolve()
    files = {
        ws.config_path: "the settings file",
        ws.db_path: "the insights DB",
        ws.db_path.with_name(ws.db_path.name + ".wal"): "the insights DB's log",
        ws.analyst_db_path: "the analyst copy",
        ws.root / "hypotheses.toml": "the hypotheses file",
    }
    for path, what in files.items():
        if target == (root / path.relative_to(ws.root)):
            return what
    for folder in ("campaigns", ".rea", "knowledge", "runbooks"):
        if target.is_relative_to(root / folder):
            return f"inside the {folder}/ folder"
    return None


def save(table: pa.Table, fmt: str, target: Path) -> None:
    """Write the rows to target as csv, json or parquet, whole or not at all."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return
    write_bytes_atomic(target, encode(table, fmt))


def encode(table: pa.Table, fmt: str) -> bytes:
    """The rows as csv or json text."""
    if fmt == "csv":
        import pyarrow.csv as pa_csv

        buffer = io.BytesIO()
        pa_csv.write_csv(table, buffer)
        return buffer.getvalue()
    return (json.dumps(table.to_pylist(), indent=2, default=str) + "\n").encode("utf-8")


def write_insights_report(
    ws: Workspace, output: Path | None = None, *, force: bool = False
) -> tuple[Path, int]:
    """insights-report.html: the effect of each hypothesis across campaigns, with plots.
    Returns its path and the number of effects drawn from. A chosen output is checked like
    any analyst output (never onto a file of rea, never over a file without force)."""
    from rea_cli.fsutil import write_text_atomic
    from rea_cli.insights import hypothesis_effects
    from rea_cli.report.html import render_insights

    path = check_output(ws, output, force=force) if output else ws.root / "insights-report.html"
    source = _source(ws)
    rows = hypothesis_effects(source)
    write_text_atomic(path, render_insights(rows, source.name))
    return path, len(rows)
