"""What analysts ask of a workspace: read-only queries of its insights DB (the published
analyst copy when there is one; never a lock on the agent's writable file for long)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def export(ws: Workspace, directory: Path) -> list[Path]:
    """Every analyst table and view as DIR/<name>.parquet."""
    from rea_cli.insights import export_parquet

    return export_parquet(_source(ws), directory)


def write_insights_report(ws: Workspace, output: Path | None = None) -> tuple[Path, int]:
    """insights-report.html: the effect of each hypothesis across campaigns, with plots.
    Returns its path and the number of effects drawn from."""
    from rea_cli.fsutil import write_text_atomic
    from rea_cli.insights import hypothesis_effects
    from rea_cli.report.html import render_insights

    source = _source(ws)
    rows = hypothesis_effects(source)
    path = output or ws.root / "insights-report.html"
    write_text_atomic(path, render_insights(rows, source.name))
    return path, len(rows)
