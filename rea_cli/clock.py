"""The time schedules are judged by: now, or the time a test (or a dry check) supplies.

`rea tick --now 2026-12-01T06:00` and the REA_NOW environment variable (the same ISO 8601
format; a time without a zone is UTC) set it. They change only when recurring campaigns are
due: jobs, budgets and the watchdog keep the real clock.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from rea_cli.errors import UsageError

ENV = "REA_NOW"


def parse_time(text: str, what: str = "--now") -> datetime:
    """An ISO 8601 date or time; UTC when no zone is given."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{what} {text!r}: not a date/time; use ISO 8601 like 2026-12-01T06:00 (UTC) "
            "or 2026-12-01T06:00+01:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def now(explicit: str | None = None) -> datetime:
    """--now when given, else $REA_NOW, else the real time (all timezone-aware)."""
    if explicit:
        return parse_time(explicit)
    env = os.environ.get(ENV)
    if env:
        return parse_time(env, f"${ENV}")
    return datetime.now(UTC)
