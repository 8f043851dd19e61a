"""The append-only event journal (journal.jsonl): the campaign's history, one event a line."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rea_cli.errors import UsageError


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def read_events(path: Path) -> list[dict[str, Any]]:
    """All complete events. A line that is not JSON is skipped (a crash mid-append tears the
    last line); a line that is JSON but not an event is damage: UsageError naming it."""
    if not path.exists():
        return []
    events = []
    for n, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _damaged(path, n, "not UTF-8 text") from None
        try:
            event = json.loads(text)
        except json.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            raise _damaged(path, n, "not a JSON object")
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise _damaged(path, n, f"its seq {seq!r} is not a positive integer")
        if not isinstance(event.get("event"), str):
            raise _damaged(path, n, "it names no event")
        events.append(event)
    return events


def _damaged(path: Path, line: int, why: str) -> UsageError:
    return UsageError(
        f"{path} line {line} is damaged ({why}); restore the file from a backup or delete that "
        "line (campaign.json holds the campaign's state, the journal its history)"
    )


def append_event(path: Path, campaign_id: str, event: str, /, **details: Any) -> dict[str, Any]:
    """Append one event with the next sequence number; fsync so a crash cannot lose it."""
    seq = max((e["seq"] for e in read_events(path)), default=0) + 1
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
