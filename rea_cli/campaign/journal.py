"""The append-only event journal (journal.jsonl): the campaign's history, one event a line."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def read_events(path: Path) -> list[dict[str, Any]]:
    """All complete events; a torn last line (crash mid-append) is ignored."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def append_event(path: Path, campaign_id: str, event: str, /, **details: Any) -> dict[str, Any]:
    """Append one event with the next sequence number; fsync so a crash cannot lose it."""
    existing = read_events(path)
    seq = existing[-1]["seq"] + 1 if existing else 1
    record = {"seq": seq, "at": now_iso(), "event": event, "campaign_id": campaign_id, **details}
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    _repair_torn_tail(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    return record


def _repair_torn_tail(path: Path) -> None:
    """A crash mid-append can leave a last line without newline; start the next on its own line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) != b"\n":
            fh.write(b"\n")
