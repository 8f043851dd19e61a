"""The watchdog: `rea tick`, run every few minutes from cron or scrontab.

For every RUNNING campaign it checks that something will move the campaign on: the current round
was fully submitted and its wake-up job is alive. When not (a wake-up cancelled, failed, purged or
never submitted), it runs the resume step, which finishes the submission, ingests the results or
chains a new wake-up. It also cancels and pauses a campaign whose measured spend crossed its
approved budget, and reports stuck campaigns. It never waits on a busy campaign and never starts a
second tick: both locks are probed without waiting.

`decide` is pure (campaign + scheduler view + clock -> decision); `tick` does the I/O. The cron
(or scrontab) entry that runs the tick is cron.py's, re-exported here for the CLI.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from rea_cli import budget
from rea_cli.app.resume import launch_pending, low_disk, resume_campaign
from rea_cli.app.schedules import ScheduleTick, tick_schedules
from rea_cli.app.sync import catch_up_all
from rea_cli.campaign.journal import now_iso
from rea_cli.campaign.model import Campaign, JobRecord, Round
from rea_cli.campaign.state import CampaignState, RoundStatus
from rea_cli.campaign.store import CampaignStore, list_campaigns
from rea_cli.cron import CronTool as CronTool  # re-exported for `rea cron`
from rea_cli.cron import install_cron as install_cron
from rea_cli.cron import remove_cron as remove_cron
from rea_cli.cron import workspace_cron_block as workspace_cron_block
from rea_cli.errors import LockedError, ReaError, os_error
from rea_cli.executor.backends import make_scheduler
from rea_cli.executor.scheduler import (
    JobInfo,
    JobState,
    Scheduler,
    campaign_job_prefix,
    never_starts,
    workspace_tag,
)
from rea_cli.fsutil import LOCK_MODE
from rea_cli.workspace import Workspace

log = logging.getLogger(__name__)

Action = Literal["none", "resumed", "paused", "skipped-busy", "error"]
ANOTHER_TICK = "another tick is running"
BUSY = "campaign lock held by another process"
# A trial pending this many times its time limit (and at least STUCK_PENDING_MIN_S) is reported.
STUCK_PENDING_FACTOR = 4
STUCK_PENDING_MIN_S = 30 * 60
# Pending reasons that mean the job will never start by itself.
NEVER_STARTS = ("DependencyNeverSatisfied", "JobHeldAdmin", "BadConstraints", "PartitionDown")


# ---------------------------------------------------------------- report


@dataclass(frozen=True)
class CampaignTick:
    """What the tick saw and did for one campaign."""

    campaign_id: str
    state: str
    action: Action
    reason: str
    stuck: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TickReport:
    ran: bool  # False when another tick held the lock
    message: str
    campaigns: list[CampaignTick] = field(default_factory=list)
    synced: list[str] = field(default_factory=list)  # campaigns whose insights caught up
    at: str = field(default_factory=now_iso)
    schedules: list[ScheduleTick] = field(default_factory=list)  # recurring campaigns

    @property
    def acted(self) -> list[CampaignTick]:
        return [c for c in self.campaigns if c.action in ("resumed", "paused")]

    @property
    def errors(self) -> list[CampaignTick | ScheduleTick]:
        ticks: list[CampaignTick | ScheduleTick] = [*self.campaigns, *self.schedules]
        return [c for c in ticks if c.action == "error"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- pure decision


@dataclass(frozen=True)
class Decision:
    action: Literal["none", "resume", "pause"]
    reason: str
    spent_gpu_hours: float = 0.0
    stuck: list[str] = field(default_factory=list)


def current_round(c: Campaign) -> Round | None:
    """The last round of the campaign's current phase (None before the first was recorded)."""
    return c.current_round()


def open_jobs(c: Campaign) -> dict[str, JobRecord]:
    """The last job of every trial whose record does not say it has ended (any phase)."""
    return {t.jobs[-1].job_id: t.jobs[-1] for t in c.trials.values() if t.last_job_open}


def jobs_to_query(c: Campaign) -> list[str]:
    """Every job id the tick needs the scheduler's view of: open trial jobs and the wake-up."""
    ids = list(open_jobs(c))
    rnd = current_round(c)
    if rnd is not None and rnd.wakeup_job_id:
        ids.append(rnd.wakeup_job_id)
    return ids


def _gone(info: JobInfo | None) -> bool:
    return info is None or info.state.has_ended


def _age_s(info: JobInfo, now: datetime) -> float | None:
    if info.submitted_at is None:
        return None
    return (now - info.submitted_at).total_seconds()


def stuck_notes(c: Campaign, infos: dict[str, JobInfo], now: datetime) -> list[str]:
    """Signs that a campaign will not move by itself (reported, never acted on)."""
    notes = []
    rnd = current_round(c)
    wake = infos.get(rnd.wakeup_job_id) if rnd is not None and rnd.wakeup_job_id else None
    if wake is not None and (
        wake.state is JobState.HELD
        or (wake.state is JobState.PENDING and any(r in (wake.reason or "") for r in NEVER_STARTS))
    ):
        notes.append(
            f"wake-up {wake.job_id} is {wake.state.value} ({wake.reason or 'no reason'}) and "
            f"will not start; cancel it (the next tick resumes the campaign)"
        )
    released = rnd is not None and rnd.status is RoundStatus.RELEASED
    for jid, job in open_jobs(c).items():
        info = infos.get(jid)
        if info is None:
            continue
        if info.state is JobState.HELD and released:
            notes.append(f"trial job {jid} is still held although its round was released")
            continue
        if info.state is not JobState.PENDING:
            continue
        age = _age_s(info, now)
        limit_s = max(STUCK_PENDING_MIN_S, STUCK_PENDING_FACTOR * job.time_limit_min * 60)
        never = any(r in (info.reason or "") for r in NEVER_STARTS)
        if never or (age is not None and age > limit_s):
            waited = f"for {age / 60:.0f} min " if age is not None else ""
            notes.append(
                f"trial job {jid} pending {waited}(time limit {job.time_limit_min:g} min, reason "
                f"{info.reason or 'none'})"
            )
    return notes


def decide(c: Campaign, infos: dict[str, JobInfo], now: datetime) -> Decision:
    """What the tick should do for a RUNNING campaign, given the scheduler's view."""
    spent = budget.measured_spend_hours(c, infos, now)
    stuck = stuck_notes(c, infos, now)
    approved = c.budget.approved_gpu_hours
    if spent > approved + 1e-9:
        return Decision(
            "pause",
            f"measured spend {spent:.3f} GPU-h exceeds the approved {approved:.3f} GPU-h",
            spent,
            stuck,
        )
    for jid in open_jobs(c):
        info = infos.get(jid)
        if info is not None and never_starts(info.state, info.reason):
            # the resume step stops the campaign's jobs and pauses it with this reason
            why = f"trial job {jid} can never start ({info.reason})"
            return Decision("resume", why, spent, stuck)
    rnd = current_round(c)
    if rnd is None:
        return Decision("resume", "no round recorded (launch interrupted)", spent, stuck)
    where = f"{c.phase} round {rnd.round}"
    if rnd.status is not RoundStatus.RELEASED:
        return Decision("resume", f"{where} was not fully submitted ({rnd.status})", spent, stuck)
    if not rnd.wakeup_job_id:
        return Decision("resume", f"{where} has no wake-up job", spent, stuck)
    wake = infos.get(rnd.wakeup_job_id)
    if _gone(wake):
        state = wake.state.value if wake is not None else "UNKNOWN"
        return Decision(
            "resume", f"wake-up {rnd.wakeup_job_id} of {where} is {state}", spent, stuck
        )
    assert wake is not None
    return Decision("none", f"wake-up {wake.job_id} is {wake.state.value}", spent, stuck)


# ---------------------------------------------------------------- I/O


@contextmanager
def tick_lock(ws: Workspace) -> Iterator[bool]:
    """Non-blocking workspace lock: yields False when another tick holds it."""
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    path = ws.state_dir / "tick.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
    except PermissionError:  # flock needs no write access (a teammate's lock file)
        fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def tick(
    ws: Workspace, scheduler: Scheduler | None = None, now: datetime | None = None
) -> TickReport:
    """Check every campaign of the workspace once; resume or pause those that need it; then
    start the recurring campaigns that are due (`now`: the schedules' clock, see clock.py)."""
    with tick_lock(ws) as mine:
        if not mine:
            return TickReport(False, ANOTHER_TICK)
        sched = scheduler
        results = []
        for cid in list_campaigns(ws):
            # each campaign on its own: a broken one is its own error line, the next goes on
            try:
                store = CampaignStore(ws, cid)
                c = store.load()
                if c.state is CampaignState.APPROVED and launch_pending(store):
                    sched = sched or make_scheduler(ws)
                    results.append(_finish_launch(ws, cid, sched))
                    continue
                if c.state not in (CampaignState.RUNNING, CampaignState.PAUSED):
                    continue
                if sched is None and (c.state is CampaignState.RUNNING or c.pause_kind):
                    sched = make_scheduler(ws)
                results.append(_tick_campaign(ws, cid, sched))
            except Exception as exc:
                error = os_error(exc) if isinstance(exc, OSError) else exc
                if not isinstance(error, ReaError):
                    log.debug("tick: campaign %s", cid, exc_info=True)
                log.warning("tick: campaign %s: %s", cid, error)
                results.append(CampaignTick(cid, "?", "error", _line(error)))
        # whatever a missed sync left behind (a kill -9, a full disk, a DB held by a reader,
        # a pause nobody synced): the DB and the analyst copy catch up with the folders
        synced = catch_up_all(ws)
        n = len(results)
        acted = sum(r.action in ("resumed", "paused") for r in results)
        message = f"{n} campaign(s) checked, {acted} acted on" if n else "no running campaign"
        if synced:
            message += f"; insights caught up with {', '.join(synced)}"
        # after the campaigns: a run that has just ended no longer blocks its schedule's next
        runs = tick_schedules(ws, now or datetime.now(UTC))
        started = sum(r.action == "started" for r in runs)
        if runs:
            message += f"; {len(runs)} schedule(s), {started} run(s) started"
        return TickReport(True, message, results, synced=synced, schedules=runs)


def _line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, ReaError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _finish_launch(ws: Workspace, cid: str, sched: Scheduler) -> CampaignTick:
    """`rea launch` was killed before the campaign turned RUNNING: the resume step finishes
    it (idempotent, under the campaign lock)."""
    why = "launch interrupted before the campaign turned RUNNING"
    try:
        outcome = resume_campaign(ws, cid, sched)
    except LockedError:
        return CampaignTick(
            cid, "APPROVED", "skipped-busy", "campaign lock held by another process"
        )
    state = CampaignStore(ws, cid).load().state.value
    return CampaignTick(cid, state, "resumed", f"{why}; {outcome.action} ({outcome.detail})")


def _tick_campaign(ws: Workspace, cid: str, sched: Scheduler | None) -> CampaignTick:
    store = CampaignStore(ws, cid)
    try:
        with store.lock(wait_s=0):
            c = store.load()
            if c.state is CampaignState.PAUSED and c.pause_kind is None:
                why = c.pause_reason or "no reason recorded"
                return CampaignTick(cid, c.state.value, "none", "paused", [f"paused: {why}"])
            if c.state is CampaignState.PAUSED:  # a pause that lifts once its cause is gone
                decision = Decision("resume", f"paused ({c.pause_kind}): check its cause")
            elif c.state is not CampaignState.RUNNING or sched is None:
                return CampaignTick(cid, c.state.value, "none", f"campaign is {c.state.value}")
            elif low_disk(ws):  # the resume step pauses it, saying so (a full disk is not
                # the campaign's fault: nothing is diagnosed or retried while it lasts)
                decision = Decision("resume", "the workspace's disk is nearly full")
            else:
                infos = sched.states(jobs_to_query(c))
                decision = decide(c, infos, datetime.now(UTC))
            if decision.action == "pause" and sched is not None:
                pause_over_budget(store, c, sched, decision)
                return CampaignTick(cid, c.state.value, "paused", decision.reason, decision.stuck)
    except LockedError:
        return CampaignTick(cid, "RUNNING", "skipped-busy", "campaign lock held by another process")
    if decision.action == "none":
        return CampaignTick(cid, c.state.value, "none", decision.reason, decision.stuck)
    # the lock is released here: resume_campaign takes it itself (and is idempotent)
    log.info("tick: resuming %s: %s", cid, decision.reason)
    try:
        outcome = resume_campaign(ws, cid, sched)
    except LockedError:
        return CampaignTick(
            cid, c.state.value, "skipped-busy", "campaign lock held by another process"
        )
    after = store.load()
    if c.state is CampaignState.PAUSED and after.state is CampaignState.PAUSED:
        return CampaignTick(cid, after.state.value, "none", "paused", [outcome.detail])
    store.event("watchdog_resumed", reason=decision.reason, outcome=outcome.action)
    state = after.state.value
    return CampaignTick(
        cid,
        state,
        "paused" if outcome.action == "paused" else "resumed",
        f"{decision.reason}; resume: {outcome.action} ({outcome.detail})",
        decision.stuck,
    )


def pause_over_budget(
    store: CampaignStore, c: Campaign, sched: Scheduler, decision: Decision
) -> None:
    """Cancel every live job of the campaign (wake-ups first, so none fires) and pause it.
    The caller holds the campaign lock."""
    wakeups = {r.wakeup_job_id for p in c.phases.values() for r in p.rounds if r.wakeup_job_id}
    trial_jobs = {j.job_id for t in c.trials.values() for j in t.jobs}
    prefix = campaign_job_prefix(workspace_tag(store.ws.root), c.campaign_id)
    found = {j.job_id for j in sched.find(prefix)}
    infos = sched.states(sorted(wakeups | trial_jobs | found))
    live = {jid: i for jid, i in infos.items() if not _gone(i)}
    first = set(live) & (wakeups | (found - trial_jobs))
    sched.cancel(sorted(first))
    sched.cancel(sorted(set(live) - first))
    ended, now = now_iso(), datetime.now(UTC)
    for t in c.trials.values():
        for job in t.jobs:
            if job.job_id in live:
                job.gpu_seconds = budget.job_gpu_seconds(job, live[job.job_id], now)
                job.state = JobState.CANCELLED
                job.ended_at = job.ended_at or ended
                job.reason = "cancelled by rea tick: budget exceeded"
    budget.refresh(c)
    reason = f"{decision.reason}; raise the budget with a new plan or `rea cancel {c.campaign_id}`"
    c.pause_reason = reason
    store.event(
        "budget_exceeded",
        spent_gpu_hours=round(decision.spent_gpu_hours, 6),
        approved_gpu_hours=c.budget.approved_gpu_hours,
        cancelled_jobs=sorted(live),
    )
    store.transition(c, CampaignState.PAUSED, reason=reason)
