"""Recurring campaigns as data, and when a run is due. Pure: no I/O here.

A schedule is a campaign template (model, dataset, metric, profile, goal) with a cadence (a
cron expression or every N days), a standing approval bound to the template's hash (who
approved, the budget of one run and of one period, until when), and the runs it started.
`decide` says what `rea tick` does for it at a given time.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rea_cli.campaign.store import check_campaign_id
from rea_cli.errors import UsageError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
Period = Literal["day", "week", "month"]
# `every N days` between an hour (a tick runs every few minutes) and a leap year: beyond these,
# the due-time arithmetic divides by zero or leaves datetime's range
MIN_EVERY_DAYS, MAX_EVERY_DAYS = 1 / 24, 366.0
# campaign states after which a run no longer holds budget or blocks the next run
ENDED = ("AWAITING_REVIEW", "ACCEPTED", "REJECTED", "CANCELLED", "FAILED")


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _iso_time(value: str) -> str:
    """A time field of a schedule file must parse as an ISO 8601 time (a hand edit may not)."""
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 time") from None
    return value


class Template(_Doc):
    """template.json: what each run plans, and when runs are due."""

    name: str
    model: str
    dataset: str
    metric: str | None = None
    profile: str = "standard"
    goal: str = ""
    cron: str | None = None  # five cron fields, UTC
    every_days: float | None = Field(None, ge=MIN_EVERY_DAYS, le=MAX_EVERY_DAYS)
    created_at: str
    created_by: str

    @field_validator("cron")
    @classmethod
    def _cron_fields(cls, value: str | None) -> str | None:
        if value is not None and not cron_ok(value):
            raise ValueError(f"{value!r} is not a cron expression of five fields")
        return value

    @model_validator(mode="after")
    def _one_cadence(self) -> Template:
        if (self.cron is None) == (self.every_days is None):
            raise ValueError("give exactly one of a cron expression or every N days")
        return self

    @property
    def cadence(self) -> str:
        return f"cron '{self.cron}' (UTC)" if self.cron else f"every {self.every_days:g} day(s)"


class StandingApproval(_Doc):
    """approval.json: a human's approval of every run of the template, within budgets."""

    schedule: str
    by: str
    at: str
    template_hash: str
    run_gpu_hours: float = Field(gt=0)
    period: Period = "month"
    period_gpu_hours: float = Field(gt=0)
    valid_until: str  # ISO date or time (UTC when no zone)

    _times = field_validator("at", "valid_until")(_iso_time)


class RunRecord(_Doc):
    campaign_id: str
    due_at: str  # the cadence's time this run stands for
    started_at: str
    period: str  # period key at start ("2026-12", "2026-W49", "2026-12-01")

    _times = field_validator("due_at", "started_at")(_iso_time)

    @field_validator("campaign_id")
    @classmethod
    def _campaign_id(cls, value: str) -> str:
        try:
            return check_campaign_id(value)
        except UsageError as exc:
            raise ValueError(str(exc)) from None


class ScheduleState(_Doc):
    """state.json: pause flag and the runs started."""

    paused: bool = False
    runs: list[RunRecord] = Field(default_factory=list)


def template_hash(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise UsageError(
            f"invalid schedule name {name!r}; use letters, digits, '-' and '_' (at most 40)"
        )
    return name


def parse_every(text: str) -> float:
    """'7d', '7 days', '12h' -> days (from 1h to 366d)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(d|days?|h|hours?)\s*", text.lower())
    days = float(m.group(1)) / (24.0 if m.group(2).startswith("h") else 1.0) if m else 0.0
    if not MIN_EVERY_DAYS <= days <= MAX_EVERY_DAYS:
        raise UsageError(
            f"--every {text!r}: give a duration like 7d, 1d or 12h, from 1h to {MAX_EVERY_DAYS:g}d"
        )
    return days


def cron_ok(expr: str) -> bool:
    from croniter import croniter

    return len(expr.split()) == 5 and bool(croniter.is_valid(expr))


def check_cron(expr: str) -> str:
    if not cron_ok(expr):
        raise UsageError(
            f"--cron {expr!r}: not a cron expression; give five fields (minute hour day month "
            "weekday), e.g. '0 6 * * 1' for Mondays at 06:00 UTC"
        )
    return expr


def period_key(at: datetime, period: Period) -> str:
    at = at.astimezone(UTC)
    if period == "day":
        return f"{at:%Y-%m-%d}"
    if period == "week":
        year, week, _ = at.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{at:%Y-%m}"


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def latest_due(
    t: Template, anchor: datetime, last_due: datetime | None, now: datetime
) -> datetime | None:
    """The latest cadence time <= now that comes after the last run's (missed ones are not
    run one after another: one run stands for all of them); None when nothing is due.

    The first run of `every N days` is due at the anchor (the approval); of a cron schedule,
    at its first time after the anchor.
    """
    if t.every_days is not None:
        step = timedelta(days=t.every_days)
        first = anchor if last_due is None else last_due + step
        if first > now:
            return None
        return first + step * math.floor((now - first) / step)
    from croniter import croniter

    start = last_due or anchor
    nxt = croniter(t.cron, start).get_next(datetime)
    if nxt > now:
        return None
    prev: datetime = croniter(t.cron, now + timedelta(seconds=1)).get_prev(datetime)
    return prev


def next_due(t: Template, anchor: datetime, last_due: datetime | None) -> datetime:
    """When the next run will be due (for listings)."""
    if t.every_days is not None:
        return anchor if last_due is None else last_due + timedelta(days=t.every_days)
    from croniter import croniter

    nxt: datetime = croniter(t.cron, last_due or anchor).get_next(datetime)
    return nxt


@dataclass(frozen=True)
class RunView:
    """What the tick knows of a run's campaign."""

    campaign_id: str
    state: str
    spent_gpu_hours: float
    approved_gpu_hours: float

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @property
    def charged(self) -> float:
        """GPU-hours it counts against its period: measured once ended, else its worst case
        (its approved budget, which its own guard never lets it exceed)."""
        return self.spent_gpu_hours if self.ended else self.approved_gpu_hours


@dataclass(frozen=True)
class Decision:
    action: Literal["start", "wait", "none"]
    reason: str
    due_at: datetime | None = None
    stuck: bool = False  # a due run that cannot start until a human acts or time passes


def used_in_period(state: ScheduleState, runs: dict[str, RunView], key: str) -> float:
    return sum(
        runs[r.campaign_id].charged if r.campaign_id in runs else 0.0
        for r in state.runs
        if r.period == key
    )


def decide(
    t: Template,
    approval: StandingApproval | None,
    state: ScheduleState,
    current_hash: str,
    runs: dict[str, RunView],
    now: datetime,
) -> Decision:
    """What the tick does for one schedule at `now`."""
    if state.paused:
        return Decision("none", "paused (rea schedule resume to go on)")
    if approval is None:
        return Decision(
            "wait",
            f"no standing approval: approve it with `rea schedule approve {t.name}`",
            stuck=True,
        )
    if approval.template_hash != current_hash:
        return Decision(
            "wait",
            f"the template changed since {approval.by} approved it; approve it again with "
            f"`rea schedule approve {t.name}`",
            stuck=True,
        )
    last = state.runs[-1] if state.runs else None
    due = latest_due(t, _time(approval.at), _time(last.due_at) if last else None, now)
    if due is None:
        nxt = next_due(t, _time(approval.at), _time(last.due_at) if last else None)
        return Decision("none", f"next run due at {nxt.isoformat()}")
    if now > _time(approval.valid_until):
        return Decision(
            "wait",
            f"a run is due but the standing approval expired at {approval.valid_until}; "
            f"renew it with `rea schedule approve {t.name}`",
            due,
            stuck=True,
        )
    if last is not None:
        prev = runs.get(last.campaign_id)
        if prev is not None and not prev.ended:
            return Decision(
                "wait",
                f"a run is due but the previous run {prev.campaign_id} is {prev.state}; "
                "it starts once that one has ended",
                due,
                stuck=prev.state == "PAUSED",
            )
    key = period_key(now, approval.period)
    used = used_in_period(state, runs, key)
    if used + approval.run_gpu_hours > approval.period_gpu_hours + 1e-9:
        return Decision(
            "wait",
            f"a run is due but does not fit the {approval.period}'s budget: used {used:.3f} + "
            f"one run {approval.run_gpu_hours:g} > {approval.period_gpu_hours:g} GPU-h for "
            f"{key}; it waits for the next {approval.period} (or approve a larger period budget)",
            due,
            stuck=True,
        )
    return Decision("start", f"due at {due.isoformat()}", due)
