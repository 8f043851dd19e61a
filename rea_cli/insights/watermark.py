"""The sync watermark: what a database file (the agent's DB, or the analyst copy published from
it) reflects of each campaign folder: the folder's digest and journal seq at its last sync."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)


def read_watermarks(db_path: Path) -> dict[str, str]:
    """campaign id -> folder digest, as recorded in db_path ({} when it has none or cannot be
    read: then everything counts as behind, and the next sync rewrites it)."""
    if not db_path.exists():
        return {}
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except duckdb.Error as exc:
        log.info("cannot read the watermark of %s (%s): treated as behind", db_path, exc)
        return {}
    try:
        rows = con.execute("SELECT campaign_id, folder_digest FROM sync_watermark").fetchall()
    except duckdb.Error:  # an older schema: no watermark yet
        return {}
    finally:
        con.close()
    return {str(cid): str(digest) for cid, digest in rows}


WRITE_SQL = """
INSERT INTO sync_watermark (campaign_id, folder_digest, journal_seq, state, files, synced_at)
SELECT $1, $2, (SELECT max(seq) FROM events WHERE campaign_id = $1),
       (SELECT state FROM campaigns WHERE campaign_id = $1), $3, current_timestamp
ON CONFLICT (campaign_id) DO UPDATE SET folder_digest = EXCLUDED.folder_digest,
    journal_seq = EXCLUDED.journal_seq, state = EXCLUDED.state, files = EXCLUDED.files,
    synced_at = EXCLUDED.synced_at
"""
