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


# a supplied time must leave room for due-time arithmetic (a time plus its interval, a cron's
# next time, a shift to UTC) inside datetime's years 1 to 9999
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


def now(explicit: str | None = None) -> datetime:
    """--now when given (an empty one is an error, not the real time), else $REA_NOW, else the
    real time (all timezone-aware)."""
    if explicit is not None:
        return _in_range(parse_time(explicit), explicit, "--now")
    env = os.environ.get(ENV)
    if env:
        return _in_range(parse_time(env, f"${ENV}"), env, f"${ENV}")
    return datetime.now(UTC)


def _in_range(value: datetime, text: str, what: str) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise UsageError(
            f"{what} {text!r}: out of range; give a time from {EARLIEST:%Y-%m-%d} to "
            f"{LATEST:%Y-%m-%d} (UTC)"
        )
    return value
