"""The analyst copy: a read-only snapshot of the insights DB at a stable path.

Protocol: with the writable DB open (its lock keeps other writers out), CHECKPOINT so the file
holds every committed transaction and no WAL, copy it byte for byte to a temporary name in the
analyst copy's folder, make it read-only, fsync, and os.replace it onto the stable path. A reader
that opened the old copy keeps its file (same inode) until it reconnects; a new reader sees the
new copy whole. Readers never open the writable file, so they never block the agent.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import time
from pathlib import Path

import duckdb

from rea_cli.fsutil import current_umask
from rea_cli.insights.db import connect

log = logging.getLogger(__name__)

_READ_ONLY_MODE = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


def publish(db_path: Path, analyst_path: Path, *, retries: int = 5) -> float:
    """Publish the analyst copy of db_path at analyst_path. Returns the seconds it took."""
    with connect(db_path, read_only=False, retries=retries) as con:
        return publish_locked(con, db_path, analyst_path)


def publish_locked(con: duckdb.DuckDBPyConnection, db_path: Path, analyst_path: Path) -> float:
    """publish() with the writable connection already open (the caller holds the lock)."""
    start = time.perf_counter()
    con.execute("CHECKPOINT")
    analyst_path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(analyst_path)
    tmp = analyst_path.with_name(f".{analyst_path.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(db_path, tmp)
        os.chmod(tmp, _READ_ONLY_MODE & ~current_umask())  # read-only; readers as the umask says
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, analyst_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    elapsed = time.perf_counter() - start
    log.debug("published %s -> %s in %.3fs", db_path, analyst_path, elapsed)
    return elapsed


def _remove_stale_temps(analyst_path: Path) -> None:
    # Only a publisher holding the writable DB's lock gets here, so any temp copy left in the
    # folder is from a publisher that died mid-copy.
    for stale in analyst_path.parent.glob(f".{analyst_path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
