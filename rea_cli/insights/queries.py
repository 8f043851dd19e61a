"""Read side: the planner's helpers and what `rea insights` runs. Connections are read-only.

Results come back as Arrow tables or plain dicts (TIMESTAMPTZ values through Arrow, which needs
no pytz).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from rea_cli.errors import UsageError
from rea_cli.insights.db import connect
from rea_cli.insights.schema import INTERNAL_TABLES

# Statement types `rea insights sql` runs; SELECT covers FROM, WITH, DESCRIBE, SHOW, SUMMARIZE.
_ALLOWED = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


def readable_db(db_path: Path, analyst_path: Path | None) -> Path:
    """The analyst copy when it exists, else the writable DB (opened read-only, briefly)."""
    if analyst_path is not None and analyst_path.exists():
        return analyst_path
    if db_path.exists():
        return db_path
    raise UsageError(
        f"no insights DB yet at {analyst_path or db_path}; it appears after the first "
        "campaign step (or run `rea init` to create an empty one)"
    )


def hypothesis_effects(
    db_path: Path,
    *,
    model_family: str | None = None,
    dataset: str | None = None,
    hypothesis: str | None = None,
    retries: int = 5,
) -> list[dict[str, Any]]:
    """Rows of the hypothesis_effects view, best mean gain first, optionally filtered.

    Pass the analyst copy when there is one (see readable_db); the file is opened read-only.
    """
    where, params = [], []
    for column, value in (
        ("model_family", model_family),
        ("dataset", dataset),
        ("hypothesis_id", hypothesis),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    sql = "SELECT * FROM hypothesis_effects"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY model_family, dataset, metric, mean_gain DESC NULLS LAST, hypothesis_id"
    with connect(db_path, read_only=True, retries=retries) as con:
        try:
            table = con.sql(sql, params=params).to_arrow_table()
        except duckdb.CatalogException as exc:
            raise UsageError(
                f"{db_path} has no hypothesis_effects view (older schema?); run a sync or "
                "`rea init` to migrate it"
            ) from exc
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def check_read_only_sql(sql: str) -> None:
    """Refuse anything but one SELECT-like statement (no COPY, ATTACH, SET, INSERT...)."""
    try:
        statements = duckdb.connect().extract_statements(sql)
    except duckdb.Error as exc:
        raise UsageError(f"bad SQL: {_first_line(exc)}") from exc
    if len(statements) != 1:
        raise UsageError(f"give exactly one SELECT statement (got {len(statements)})")
    kind = statements[0].type
    if kind not in _ALLOWED:
        raise UsageError(
            f"only SELECT queries run here (got {kind.name}); the insights DB is read-only: "
            "for anything else open the analyst copy with duckdb (`rea insights path`)"
        )


def run_sql(db_path: Path, sql: str, *, retries: int = 5) -> pa.Table:
    """Run one read-only SELECT against db_path (opened read-only) and return its rows."""
    check_read_only_sql(sql)
    with connect(db_path, read_only=True, retries=retries) as con:
        try:
            return con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise UsageError(f"bad SQL: {_first_line(exc)}") from exc


def relation_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Analyst tables and views (internal bookkeeping tables left out)."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "UNION ALL SELECT view_name FROM duckdb_views() "
        "WHERE database_name = current_database() AND NOT internal ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows if r[0] not in INTERNAL_TABLES]


def export_parquet(
    db_path: Path,
    out_dir: Path,
    *,
    retries: int = 5,
    check: Callable[[Path], object] | None = None,
) -> list[Path]:
    """Write every analyst table and view to out_dir/<name>.parquet. Returns the files.
    `check` is called on every target before anything is written (it raises to refuse)."""
    written = []
    with connect(db_path, read_only=True, retries=retries) as con:
        names = relation_names(con)
        for name in names:
            if check is not None:
                check(out_dir / f"{name}.parquet")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            target = out_dir / f"{name}.parquet"
            tmp = out_dir / f".{name}.parquet.tmp"
            path_sql = str(tmp).replace("'", "''")
            con.execute(f"COPY (SELECT * FROM {name}) TO '{path_sql}' (FORMAT parquet)")
            tmp.replace(target)
            written.append(target)
    return written


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def strategy_effects(
    db_path: Path, *, metric: str, direction: str, retries: int = 5
) -> list[dict[str, Any]]:
    """Rows of the strategy_effects view for one metric: the planner's history source."""
    sql = "SELECT * FROM strategy_effects WHERE metric = ? AND direction = ? AND n > 0"
    with connect(db_path, read_only=True, retries=retries) as con:
        try:
            table = con.sql(sql, params=[metric, direction]).to_arrow_table()
        except duckdb.CatalogException:
            return []  # a DB from before the view existed: no history yet
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def cost_measurements(
    db_path: Path, *, model_family: str, data: str, retries: int = 5
) -> list[tuple[float, int]]:
    """(device_time_s, samples_seen) of succeeded attempts of this family on this exact data
    spec (canonical JSON): what the cost model learns seconds per sample from. The baselines'
    attempts when there are any: the cost model prices a trial as a multiple of a full
    baseline trial, and the other configs (more fields, bigger models) cost more per sample."""
    sql = (
        "SELECT a.device_time_s, a.samples_seen, t.hypothesis_id = 'baseline' FROM attempts a "
        "JOIN trials t USING (campaign_id, trial_id) "
        "JOIN campaigns c USING (campaign_id) "
        "WHERE a.status = 'succeeded' AND a.device_time_s > 0 AND a.samples_seen > 0 "
        "AND c.model_family = ? AND CAST(t.data AS VARCHAR) = ?"
    )
    with connect(db_path, read_only=True, retries=retries) as con:
        try:
            rows = con.execute(sql, [model_family, data]).fetchall()
        except duckdb.Error:
            return []
    base = [(float(t), int(n)) for t, n, is_base in rows if is_base]
    return base or [(float(t), int(n)) for t, n, _ in rows]
