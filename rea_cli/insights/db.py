"""Opening the insights DB: short-lived connections, lock retries, schema creation and migrations.

DuckDB holds a whole-file lock for a connection's lifetime (read-write exclusive, read-only
shared) and a conflicting open fails at once instead of waiting. Every connection here is opened
for one piece of work and closed; a conflicting lock is retried with backoff, then reported as
InsightsLocked so the caller can leave the result files for the next sync.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from rea_cli.errors import LockedError, ReaError, UsageError
from rea_cli.insights.schema import LATEST_VERSION, MIGRATIONS, SCHEMA_VERSION_DDL

log = logging.getLogger(__name__)

# First wait after a lock conflict; doubled each retry, capped, with jitter so that two agents
# retrying at once do not collide again in step.
BASE_DELAY_S = 0.05
MAX_DELAY_S = 2.0
_STORAGE_VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+$")


class InsightsError(ReaError):
    """The insights DB cannot be used as asked (newer schema, damaged file)."""


class InsightsLocked(LockedError):
    """Another process holds the insights DB file; nothing was written."""


def is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


@contextmanager
def connect(
    db_path: Path, *, read_only: bool, retries: int = 5
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to db_path for one piece of work, closed on exit (the lock goes with it)."""
    con = _open(db_path, read_only=read_only, retries=retries)
    try:
        yield con
    finally:
        con.close()


def _open(db_path: Path, *, read_only: bool, retries: int) -> duckdb.DuckDBPyConnection:
    if read_only and not db_path.exists():
        raise UsageError(f"no insights DB at {db_path}; run `rea init` or sync a campaign first")
    delay = BASE_DELAY_S
    for attempt in range(retries + 1):
        try:
            return duckdb.connect(str(db_path), read_only=read_only)
        except duckdb.IOException as exc:
            if not is_lock_error(exc):
                raise InsightsError(f"cannot open insights DB {db_path}: {exc}") from exc
            if attempt == retries:
                holder = _lock_holder(str(exc))
                raise InsightsLocked(
                    f"insights DB {db_path} is locked by another process{holder}; gave up after "
                    f"{retries} retries. Nothing is lost: the result files stay in the campaign "
                    "folders and the next sync ingests them. Analysts should open the published "
                    "copy (`rea insights path`), not this file."
                ) from exc
            log.debug("insights DB %s locked, retry %d in %.2fs", db_path, attempt + 1, delay)
            time.sleep(delay * (1.0 + 0.5 * random.random()))
            delay = min(delay * 2, MAX_DELAY_S)
    raise AssertionError("unreachable")


def _lock_holder(message: str) -> str:
    match = re.search(r"\(PID (\d+)\)", message)
    return f" (PID {match.group(1)})" if match else ""


def check_storage_version(storage_version: str) -> str:
    if not _STORAGE_VERSION_RE.match(storage_version):
        raise UsageError(
            f"bad storage version {storage_version!r}; use a DuckDB version such as 'v1.4.0'"
        )
    return storage_version


def create_file(db_path: Path, storage_version: str | None) -> None:
    """Create an empty DuckDB file, in an older storage format when storage_version is given."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    version = check_storage_version(storage_version) if storage_version else None
    try:
        if version is None:
            duckdb.connect(str(db_path)).close()
            return
        con = duckdb.connect()
        try:
            path_sql = str(db_path).replace("'", "''")
            con.execute(f"ATTACH '{path_sql}' AS target (STORAGE_VERSION '{version}')")
            con.execute("DETACH target")
        finally:
            con.close()
    except duckdb.IOException as exc:
        if not is_lock_error(exc):
            raise
        # another agent process is creating it at this moment: it exists, use it


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """First value of the first row. fetchall, not fetchone: DuckDB 2 refuses other work on a
    connection whose last result was not read to the end."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The version recorded in the open database; 0 for a database without the table."""
    exists = scalar(
        con,
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE table_name = 'schema_version' AND database_name = current_database()",
    )
    if not exists:
        return 0
    return int(scalar(con, "SELECT coalesce(max(version), 0) FROM schema_version"))


def migrate(con: duckdb.DuckDBPyConnection, target: int = LATEST_VERSION) -> list[int]:
    """Apply the pending migrations up to target, each in its own transaction. Returns them."""
    current = schema_version(con)
    if current > LATEST_VERSION:
        raise InsightsError(
            f"insights DB schema v{current} is newer than this rea (v{LATEST_VERSION}); "
            "upgrade rea (pip install -U rea) to write to it"
        )
    if current == 0:
        _refuse_foreign(con)
    applied = []
    for migration in MIGRATIONS:
        if migration.version <= current or migration.version > target:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(SCHEMA_VERSION_DDL)
            for statement in migration.statements:
                con.execute(statement)
            con.execute(
                "INSERT INTO schema_version (version, name) VALUES (?, ?)",
                [migration.version, migration.name],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        log.info("insights DB migrated to v%d (%s)", migration.version, migration.name)
        applied.append(migration.version)
    return applied


def _refuse_foreign(con: duckdb.DuckDBPyConnection) -> None:
    if scalar(con, "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"):
        raise InsightsError(
            "this DuckDB file has tables but no schema_version: it is not an insights DB; "
            "point rea at another path or move the file away"
        )


def init_db(db_path: Path, storage_version: str | None = None) -> int:
    """Create the insights DB if needed and bring its schema up to date. Returns the version.

    storage_version (e.g. 'v1.4.0') only applies when the file is created: it makes the file,
    and every analyst copy of it, readable by DuckDB clients of that version.
    """
    if not db_path.exists():
        create_file(db_path, storage_version)
    elif storage_version is not None:
        check_storage_version(storage_version)
    with connect(db_path, read_only=False) as con:
        migrate(con)
        return schema_version(con)


def storage_version_of(db_path: Path) -> str:
    """The storage format tag of a DuckDB file, e.g. 'v1.4.0+' (opens it read-only)."""
    con = duckdb.connect()
    try:
        path_sql = str(db_path).replace("'", "''")
        con.execute(f"ATTACH '{path_sql}' AS probe (READ_ONLY)")
        tag = scalar(
            con,
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = 'probe'",
        )
        con.execute("DETACH probe")
    finally:
        con.close()
    return str(tag) if tag is not None else "unknown"
