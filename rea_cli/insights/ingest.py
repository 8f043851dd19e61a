"""sync_campaign: the one call the agent makes after each step of a campaign.

It is idempotent: rows are keyed and upserted, and the file index (ingested_files) commits in the
same transaction as the rows it describes, so a crash at any point followed by another sync gives
the same database as one clean sync. The DB lock is held twice, briefly: to read the file index,
and for the write transaction (+ publishing the analyst copy). Files are parsed in between,
without the lock.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from rea_cli.budget import ENDED_STATES
from rea_cli.errors import UsageError
from rea_cli.insights.db import (
    InsightsError,
    connect,
    create_file,
    migrate,
    scalar,
    schema_version,
)
from rea_cli.insights.files import (
    Collected,
    FileState,
    Rows,
    collect_campaign,
    folder_digest,
    merge_sources,
)
from rea_cli.insights.publish import publish_locked
from rea_cli.insights.watermark import WRITE_SQL, read_watermarks

log = logging.getLogger(__name__)

# the one rule for "this job has ended" (JobState.has_ended), as SQL
ENDED_SQL = ", ".join(f"'{state}'" for state in ENDED_STATES)

# Columns filled with the time of the write, whatever the row says.
_NOW_COLUMNS = frozenset({"synced_at", "ingested_at"})
_ARROW_TYPES = {
    "DOUBLE": pa.float64(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int64(),
    "BOOLEAN": pa.bool_(),
}


@dataclass
class SyncReport:
    """What one sync did. warnings name the files skipped this time (read at the next sync)."""

    campaign_id: str
    changed: bool = False
    files_read: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    published: bool = False
    schema_version: int = 0
    duration_s: float = 0.0


def sync_campaign(
    db_path: Path,
    campaign_dir: Path,
    *,
    analyst_path: Path | None = None,
    storage_version: str | None = None,
    retries: int = 5,
) -> SyncReport:
    """Index the campaign folder into the insights DB, then publish the analyst copy.

    Raises InsightsLocked when another process holds db_path after `retries` retries: nothing
    is written, the files stay, and the next sync ingests them. storage_version applies only
    when the DB file is created (see init_db).
    """
    start = time.perf_counter()
    campaign_dir = Path(campaign_dir)
    if not campaign_dir.is_dir():
        raise UsageError(f"no campaign folder at {campaign_dir}")
    campaign_id = campaign_dir.name
    report = SyncReport(campaign_id)
    try:
        if not db_path.exists():
            create_file(db_path, storage_version)
        _sync(db_path, campaign_dir, analyst_path, retries, report)
    except (duckdb.Error, OSError) as exc:
        # A damaged or unreadable DB file, a full disk while publishing: not the agent's step's
        # problem (the watermark says what is behind; the next sync does it). ReaError it is.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InsightsError(
            f"insights sync of {campaign_id} failed: {first}; the campaign files are intact and "
            f"the next sync retries (move {db_path} away to rebuild it from the folders)"
        ) from exc
    report.duration_s = time.perf_counter() - start
    log.info(
        "insights sync %s: %d files read, rows %s, %d warnings, published=%s (%.2fs)",
        campaign_id,
        report.files_read,
        report.rows,
        len(report.warnings),
        report.published,
        report.duration_s,
    )
    return report


def _sync(
    db_path: Path, campaign_dir: Path, analyst_path: Path | None, retries: int, report: SyncReport
) -> None:
    """Read the file index, collect the changed files (no lock), write them, publish."""
    cid = report.campaign_id
    # the folder's state BEFORE reading it: a file changed meanwhile is seen as behind next time
    digest, n_files = folder_digest(campaign_dir)
    with connect(db_path, read_only=False, retries=retries) as con:
        migrate(con)
        known = load_file_index(con, cid)
        marked = scalar(
            con, "SELECT folder_digest FROM sync_watermark WHERE campaign_id = ?", [cid]
        )
    collected = collect_campaign(campaign_dir, cid, known)
    report.files_read = collected.files_read
    report.warnings = collected.warnings

    with connect(db_path, read_only=False, retries=retries) as con:
        migrate(con)
        report.schema_version = schema_version(con)
        if collected.has_changes or marked != digest:
            report.rows = write_collected(con, collected, watermark=(digest, n_files))
            report.changed = any(report.rows.values())
        # the copy is behind when it lacks this folder's state (a publish that failed, a copy
        # replaced or removed): publish even when this sync itself changed nothing
        if analyst_path is not None and (
            report.changed or read_watermarks(analyst_path).get(cid) != digest
        ):
            publish_locked(con, db_path, analyst_path)
            report.published = True


def load_file_index(con: duckdb.DuckDBPyConnection, campaign_id: str) -> dict[str, FileState]:
    rows = con.execute(
        "SELECT path, size, mtime_ns, inode, read_offset, lines FROM ingested_files "
        "WHERE campaign_id = ?",
        [campaign_id],
    ).fetchall()
    return {r[0]: FileState(*r[1:]) for r in rows}


def write_collected(
    con: duckdb.DuckDBPyConnection,
    collected: Collected,
    *,
    watermark: tuple[str, int] | None = None,
) -> dict[str, int]:
    """Upsert every Rows of `collected`, its file index and the folder's watermark (digest,
    number of files) in one transaction."""
    files = Rows(
        "ingested_files",
        ("campaign_id", "path"),
        ("campaign_id", "path", "size", "mtime_ns", "inode", "read_offset", "lines", "ingested_at"),
    )
    for path, st in collected.files.items():
        files.add(
            {
                "campaign_id": collected.campaign_id,
                "path": path,
                "size": st.size,
                "mtime_ns": st.mtime_ns,
                "inode": st.inode,
                "read_offset": st.read_offset,
                "lines": st.lines,
            }
        )
    counts: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        types = column_types(con)
        for rows in merge_sources(list(collected.tables.values())):
            n = upsert(con, rows, types, collected.campaign_id)
            counts[rows.table] = counts.get(rows.table, 0) + n
        if counts.get("jobs") or counts.get("attempts"):
            _attempts_from_jobs(con, collected.campaign_id)
        upsert(con, files, types, collected.campaign_id)
        if watermark is not None:
            con.execute(WRITE_SQL, [collected.campaign_id, watermark[0], watermark[1]])
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise InsightsError(f"insights sync of {collected.campaign_id} failed: {exc}") from exc
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return counts


def column_types(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for table, column, dtype in con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main'"
    ).fetchall():
        out.setdefault(table, {})[column] = dtype
    return out


def to_arrow(rows: Rows, types: dict[str, str]) -> pa.Table:
    """Columns typed from the DB's own column types (timestamps and JSON travel as text)."""
    values = list(zip(*rows.by_key.values(), strict=True)) if rows.by_key else []
    arrays = []
    for i, column in enumerate(rows.columns):
        data = list(values[i]) if values else []
        arrays.append(pa.array(data, type=_ARROW_TYPES.get(types[column], pa.string())))
    return pa.Table.from_arrays(arrays, names=list(rows.columns))


def _select_expr(column: str, dtype: str) -> str:
    if column in _NOW_COLUMNS:
        return "current_timestamp"
    if dtype in ("VARCHAR", "DOUBLE", "BIGINT"):
        return column
    return f"TRY_CAST({column} AS {dtype})"


def upsert(
    con: duckdb.DuckDBPyConnection, rows: Rows, types: dict[str, dict[str, str]], campaign_id: str
) -> int:
    """INSERT ... SELECT ... ON CONFLICT DO UPDATE of the columns this source owns.

    Returns rows inserted, updated or (with prune) deleted.
    """
    if not rows.by_key and not rows.prune:
        return 0
    table_types = types[rows.table]
    source = to_arrow(rows, table_types)
    con.register("__rea_src", source)
    try:
        cols = ", ".join(rows.columns)
        select = ", ".join(_select_expr(c, table_types[c]) for c in rows.columns)
        keys = ", ".join(rows.key)
        updates = [c for c in rows.columns if c not in rows.key]
        action = (
            "DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in updates)
            if updates
            else "DO NOTHING"
        )
        n = 0
        if rows.by_key:
            n += _count(
                con.execute(
                    f"INSERT INTO {rows.table} ({cols}) SELECT {select} FROM __rea_src "
                    f"ON CONFLICT ({keys}) {action}"
                )
            )
        if rows.prune:
            same = " AND ".join(f"s.{k} = t.{k}" for k in rows.key)
            n += _count(
                con.execute(
                    f"DELETE FROM {rows.table} t WHERE t.campaign_id = ? "
                    f"AND NOT EXISTS (SELECT 1 FROM __rea_src s WHERE {same})",
                    [campaign_id],
                )
            )
        return n
    finally:
        con.unregister("__rea_src")


def _count(result: duckdb.DuckDBPyConnection) -> int:
    rows: list[Any] = result.fetchall()
    return int(rows[0][0]) if rows else 0


def _attempts_from_jobs(con: duckdb.DuckDBPyConnection, campaign_id: str) -> None:
    """Copy the scheduler's view of each attempt's job (state, node, GPU-seconds) onto it, and
    give an attempt that left no result.json a status: 'running' while its job runs, 'failed'
    once it has ended, with the agent's failure kind or the job's final state. Never NULL.

    A requeued Slurm task keeps its job id, so its attempts share one job record.
    """
    con.execute(
        f"""
        UPDATE attempts SET job_state = j.state, job_exit_code = j.exit_code,
                            node = j.node, gpu_seconds = j.gpu_seconds,
                            status = CASE
                                WHEN coalesce(attempts.status, 'running') <> 'running'
                                    THEN attempts.status
                                WHEN j.state IN ({ENDED_SQL}) THEN 'failed'
                                ELSE 'running' END,
                            failure_kind = CASE
                                WHEN coalesce(attempts.status, 'running') <> 'running'
                                    THEN attempts.failure_kind
                                WHEN j.state = 'COMPLETED'
                                    THEN coalesce(j.failure_kind, 'missing_result')
                                WHEN j.state IN ({ENDED_SQL})
                                    THEN coalesce(j.failure_kind, lower(j.state))
                                ELSE NULL END
        FROM jobs j
        WHERE attempts.campaign_id = ? AND j.campaign_id = attempts.campaign_id
          AND j.trial_id = attempts.trial_id AND j.job_id = attempts.job_id
        """,
        [campaign_id],
    )
