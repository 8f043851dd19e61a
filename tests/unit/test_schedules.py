"""When a recurring campaign is due, and what stops it: pure decisions at times the test gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from rea_cli.clock import now
from rea_cli.errors import UsageError
from rea_cli.schedules.model import (
    RunRecord,
    RunView,
    ScheduleState,
    StandingApproval,
    Template,
    check_cron,
    decide,
    latest_due,
    parse_every,
    period_key,
)

T0 = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def _t(**kw: object) -> Template:
    base = {
        "name": "w",
        "model": "dcn_v2",
        "dataset": "synthetic",
        "created_at": "x",
        "created_by": "me",
        "every_days": 7.0,
    }
    return Template.model_validate({**base, **kw})


def _approval(**kw: object) -> StandingApproval:
    base = {
        "schedule": "w",
        "by": "alice",
        "at": T0.isoformat(),
        "template_hash": "h",
        "run_gpu_hours": 4.0,
        "period": "month",
        "period_gpu_hours": 10.0,
        "valid_until": "2027-06-30T00:00:00+00:00",
    }
    return StandingApproval.model_validate({**base, **kw})


def _at(day: int, hour: int = 6) -> datetime:
    return datetime(2026, 12, day, hour, 0, tzinfo=UTC)


def _state(*runs: tuple[str, datetime]) -> ScheduleState:
    return ScheduleState(
        runs=[
            RunRecord(
                campaign_id=c,
                due_at=d.isoformat(),
                started_at=d.isoformat(),
                period=period_key(d, "month"),
            )
            for c, d in runs
        ]
    )


def test_every_n_days_first_run_at_approval_then_every_period() -> None:
    t = _t()
    assert latest_due(t, T0, None, _at(1, 5)) is None
    assert latest_due(t, T0, None, _at(1, 7)) == T0
    assert latest_due(t, T0, T0, _at(7)) is None
    assert latest_due(t, T0, T0, _at(8)) == _at(8)
    # three missed periods: one run, standing for the latest of them
    assert latest_due(t, T0, T0, _at(29)) == _at(29)


def test_cron_due_at_its_latest_time_after_the_last_run() -> None:
    t = _t(every_days=None, cron="0 3 * * 1")  # Mondays 03:00 UTC (2026-12-07 is a Monday)
    assert latest_due(t, T0, None, _at(6)) is None
    assert latest_due(t, T0, None, _at(7, 2)) is None
    assert latest_due(t, T0, None, _at(7, 3)) == _at(7, 3)
    assert latest_due(t, T0, _at(7, 3), _at(10)) is None
    assert latest_due(t, T0, _at(7, 3), _at(22)) == _at(21, 3)


def test_bad_cadences_are_one_line_errors() -> None:
    with pytest.raises(UsageError, match="five fields"):
        check_cron("every monday")
    with pytest.raises(UsageError, match="7d"):
        parse_every("weekly")
    assert parse_every("12h") == 0.5
    with pytest.raises(ValueError, match="exactly one"):
        _t(cron="0 3 * * 1")


def test_cadences_and_times_stay_within_what_due_time_arithmetic_can_do() -> None:
    assert parse_every("1h") == pytest.approx(1 / 24) and parse_every("366d") == 366.0
    for text in ("0.5h", "367d", "9" * 30 + "d", "0d"):  # 1e23 days overflowed every tick
        with pytest.raises(UsageError, match="from 1h to 366d"):
            parse_every(text)
    # the same bounds hold for a hand-edited file, and a cron or time must parse
    for bad in ({"every_days": 1e300}, {"every_days": 1e-9}, {"every_days": None, "cron": "0 6"}):
        with pytest.raises(ValidationError):
            _t(**bad)
    for bad_approval in ({"valid_until": "never"}, {"at": "x"}, {"period_gpu_hours": float("inf")}):
        with pytest.raises(ValidationError):
            _approval(**bad_approval)
    with pytest.raises(ValidationError, match="invalid campaign id"):
        RunRecord(
            campaign_id="../x", due_at=T0.isoformat(), started_at=T0.isoformat(), period="2026-12"
        )


def test_a_supplied_clock_is_checked() -> None:
    assert now("2026-12-01T06:00") == T0
    for text in ("", "soon", "9999-12-31T23:59:59", "0001-01-01T00:00+01:00"):
        with pytest.raises(UsageError, match="--now"):
            now(text)


def test_decide_starts_a_due_run() -> None:
    d = decide(_t(), _approval(), ScheduleState(), "h", {}, _at(1, 7))
    assert d.action == "start" and d.due_at == T0


def test_decide_never_two_runs_of_one_template_at_once() -> None:
    state = _state(("w-1", T0))
    running = {"w-1": RunView("w-1", "RUNNING", 0.1, 4.0)}
    d = decide(_t(), _approval(), state, "h", running, _at(9))
    assert d.action == "wait" and "previous run w-1 is RUNNING" in d.reason and not d.stuck
    paused = {"w-1": RunView("w-1", "PAUSED", 0.1, 4.0)}
    assert decide(_t(), _approval(), state, "h", paused, _at(9)).stuck
    ended = {"w-1": RunView("w-1", "AWAITING_REVIEW", 0.1, 4.0)}
    assert decide(_t(), _approval(), state, "h", ended, _at(9)).action == "start"


def test_decide_never_over_the_periods_budget() -> None:
    state = _state(("w-1", T0), ("w-2", _at(8)))
    runs = {
        "w-1": RunView("w-1", "ACCEPTED", 3.0, 4.0),  # ended: charged what it spent
        "w-2": RunView("w-2", "REJECTED", 3.5, 4.0),
    }
    d = decide(_t(), _approval(), state, "h", runs, _at(15))
    assert d.action == "wait" and d.stuck
    assert "does not fit the month's budget: used 6.500 + one run 4 > 10 GPU-h" in d.reason
    # a new month: the budget is free again
    assert decide(_t(), _approval(), state, "h", runs, datetime(2027, 1, 5, tzinfo=UTC)).action == (
        "start"
    )


def test_decide_refuses_an_edited_template_an_expired_or_missing_approval() -> None:
    d = decide(_t(), _approval(), ScheduleState(), "other-hash", {}, _at(2))
    assert d.stuck and "template changed" in d.reason
    d = decide(
        _t(),
        _approval(valid_until="2026-12-05T00:00:00+00:00"),
        _state(("w-1", T0)),
        "h",
        {"w-1": RunView("w-1", "ACCEPTED", 1, 4)},
        _at(9),
    )
    assert d.stuck and "expired" in d.reason
    d = decide(_t(), None, ScheduleState(), "h", {}, _at(2))
    assert d.stuck and "rea schedule approve w" in d.reason
    assert decide(_t(), _approval(), ScheduleState(paused=True), "h", {}, _at(2)).action == "none"


def test_period_keys() -> None:
    assert period_key(_at(1), "month") == "2026-12"
    assert period_key(_at(1), "week") == "2026-W49"
    assert period_key(_at(1), "day") == "2026-12-01"
