"""The watchdog: `rea tick`, run every few minutes from cron or scrontab.

For every RUNNING campaign it checks that something will move the campaign on: the current round
was fully submitted and its wake-up job is alive. When not (a wake-up cancelled, failed, purged or
never submitted), it runs the resume step, which finishes the submission, ingests the results or
chains a new wake-up. It also cancels and pauses a campaign whose measured spend crossed its
approved budget, and reports stuck campaigns. It never waits on a busy campaign and never starts a
second tick: both locks are probed without waiting.

`decide` is pure (campaign + scheduler view + clock -> decision); `tick` does the I/O.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rea_cli.campaign.journal import now_iso
from rea_cli.campaign.model import Campaign, JobRecord, Round
from rea_cli.campaign.state import CampaignState
from rea_cli.campaign.store import CampaignStore, list_campaigns
from rea_cli.config import SlurmSettings
from rea_cli.errors import LockedError, ReaError, SchedulerError, UsageError
from rea_cli.executor import budget
from rea_cli.executor.backends import make_scheduler
from rea_cli.executor.resume import resume_campaign
from rea_cli.executor.scheduler import JobInfo, JobState, Scheduler, campaign_job_prefix
from rea_cli.workspace import Workspace

log = logging.getLogger(__name__)

Action = Literal["none", "resumed", "paused", "skipped-busy", "error"]
ANOTHER_TICK = "another tick is running"
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
    at: str = field(default_factory=now_iso)

    @property
    def acted(self) -> list[CampaignTick]:
        return [c for c in self.campaigns if c.action in ("resumed", "paused")]

    @property
    def errors(self) -> list[CampaignTick]:
        return [c for c in self.campaigns if c.action == "error"]

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
    if c.phase is None or c.phase not in c.phases or not c.phases[c.phase].rounds:
        return None
    return c.phases[c.phase].rounds[-1]


def _ended(state: str) -> bool:
    try:
        st = JobState(state)
    except ValueError:
        return False
    return st is JobState.UNKNOWN or st.is_terminal


def open_jobs(c: Campaign) -> dict[str, JobRecord]:
    """The last job of every trial whose record does not say it has ended (any phase)."""
    return {
        t.jobs[-1].job_id: t.jobs[-1]
        for t in c.trials.values()
        if t.jobs and not _ended(t.jobs[-1].state)
    }


def jobs_to_query(c: Campaign) -> list[str]:
    """Every job id the tick needs the scheduler's view of: open trial jobs and the wake-up."""
    ids = list(open_jobs(c))
    rnd = current_round(c)
    if rnd is not None and rnd.wakeup_job_id:
        ids.append(rnd.wakeup_job_id)
    return ids


def job_gpu_seconds(job: JobRecord, info: JobInfo | None, now: datetime) -> float:
    """GPU-seconds of one job: the record's, or the scheduler's live elapsed time x GPUs."""
    if info is None:
        return job.gpu_seconds
    if info.elapsed_s is not None:
        live = info.elapsed_s
    elif info.started_at is not None:
        live = max(0.0, ((info.ended_at or now) - info.started_at).total_seconds())
    else:
        live = 0.0
    return max(job.gpu_seconds, live * (info.gpus or job.gpus))


def measured_spend_hours(c: Campaign, infos: dict[str, JobInfo], now: datetime) -> float:
    """GPU-hours measured so far: ended jobs from their records, open jobs from the scheduler's
    elapsed time (or the time since they started) x GPUs."""
    jobs = [j for t in c.trials.values() for j in t.jobs]
    return sum(job_gpu_seconds(j, infos.get(j.job_id), now) for j in jobs) / 3600.0


def _gone(info: JobInfo | None) -> bool:
    return info is None or info.state is JobState.UNKNOWN or info.state.is_terminal


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
    released = rnd is not None and rnd.status == "released"
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
                f"trial job {jid} pending {waited}(time limit {job.time_limit_min} min, reason "
                f"{info.reason or 'none'})"
            )
    return notes


def decide(c: Campaign, infos: dict[str, JobInfo], now: datetime) -> Decision:
    """What the tick should do for a RUNNING campaign, given the scheduler's view."""
    spent = measured_spend_hours(c, infos, now)
    stuck = stuck_notes(c, infos, now)
    approved = c.budget.approved_gpu_hours
    if spent > approved + 1e-9:
        return Decision(
            "pause",
            f"measured spend {spent:.3f} GPU-h exceeds the approved {approved:.3f} GPU-h",
            spent,
            stuck,
        )
    rnd = current_round(c)
    if rnd is None:
        return Decision("resume", "no round recorded (launch interrupted)", spent, stuck)
    where = f"{c.phase} round {rnd.round}"
    if rnd.status != "released":
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
    fd = os.open(ws.state_dir / "tick.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def tick(ws: Workspace, scheduler: Scheduler | None = None) -> TickReport:
    """Check every campaign of the workspace once; resume or pause those that need it."""
    with tick_lock(ws) as mine:
        if not mine:
            return TickReport(False, ANOTHER_TICK)
        sched = scheduler
        results = []
        for cid in list_campaigns(ws):
            try:
                state = CampaignStore(ws, cid).load().state
                if state not in (CampaignState.RUNNING, CampaignState.PAUSED):
                    continue
                if state is CampaignState.RUNNING and sched is None:
                    sched = make_scheduler(ws)
                results.append(_tick_campaign(ws, cid, sched))
            except ReaError as exc:
                log.warning("tick: campaign %s: %s", cid, exc)
                results.append(CampaignTick(cid, "?", "error", str(exc)))
        n = len(results)
        acted = sum(r.action in ("resumed", "paused") for r in results)
        message = f"{n} campaign(s) checked, {acted} acted on" if n else "no running campaign"
        return TickReport(True, message, results)


def _tick_campaign(ws: Workspace, cid: str, sched: Scheduler | None) -> CampaignTick:
    store = CampaignStore(ws, cid)
    try:
        with store.lock(wait_s=0):
            c = store.load()
            if c.state is CampaignState.PAUSED:
                why = c.pause_reason or "no reason recorded"
                return CampaignTick(cid, c.state.value, "none", "paused", [f"paused: {why}"])
            if c.state is not CampaignState.RUNNING or sched is None:
                return CampaignTick(cid, c.state.value, "none", f"campaign is {c.state.value}")
            infos = sched.states(jobs_to_query(c))
            decision = decide(c, infos, datetime.now(UTC))
            if decision.action == "pause":
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
    store.event("watchdog_resumed", reason=decision.reason, outcome=outcome.action)
    state = store.load().state.value
    return CampaignTick(
        cid,
        state,
        "resumed",
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
    found = {j.job_id for j in sched.find(campaign_job_prefix(c.campaign_id))}
    infos = sched.states(sorted(wakeups | trial_jobs | found))
    live = {jid: i for jid, i in infos.items() if not _gone(i)}
    first = set(live) & (wakeups | (found - trial_jobs))
    sched.cancel(sorted(first))
    sched.cancel(sorted(set(live) - first))
    ended, now = now_iso(), datetime.now(UTC)
    for t in c.trials.values():
        for job in t.jobs:
            if job.job_id in live:
                job.gpu_seconds = job_gpu_seconds(job, live[job.job_id], now)
                job.state = JobState.CANCELLED.value
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


# ---------------------------------------------------------------- cron / scrontab entry

CronTool = Literal["crontab", "scrontab"]


@dataclass(frozen=True)
class CronChange:
    tool: CronTool
    block: str  # the lines rea owns in the table ("" after a removal)
    changed: bool  # False when the table already said exactly this


def tick_command(ws_root: Path, python: str, path: str | None = None) -> str:
    """The shell command cron runs: one tick, appended to <ws>/.rea/tick.log. cron's PATH is
    minimal, so the PATH of the install (where sbatch/squeue were found) is carried along."""
    log_path = ws_root / ".rea" / "tick.log"
    argv = [python, "-m", "rea_cli", "--workspace", str(ws_root), "tick"]
    env = f"PATH={shlex.quote(path)} " if path else ""
    return f"{env}{shlex.join(argv)} >> {shlex.quote(str(log_path))} 2>&1"


def schedule(every_min: int) -> str:
    """Five cron time fields running every `every_min` minutes (1..60)."""
    if not 1 <= every_min <= 60:
        raise UsageError(f"--every {every_min}: use a number of minutes from 1 to 60")
    if every_min == 60:
        return "0 * * * *"
    return "* * * * *" if every_min == 1 else f"*/{every_min} * * * *"


def _markers(ws_root: Path) -> tuple[str, str]:
    return f"# >>> rea tick {ws_root} >>>", f"# <<< rea tick {ws_root} <<<"


def cron_block(
    ws_root: Path,
    python: str,
    every_min: int = 5,
    tool: CronTool = "crontab",
    slurm: SlurmSettings | None = None,
    path: str | None = None,
) -> str:
    """The lines `rea cron install` puts in the crontab (or scrontab), between two markers
    naming the workspace so that installing again replaces them instead of adding a copy."""
    begin, end = _markers(ws_root)
    lines = [begin, "# installed by `rea cron install`; remove with `rea cron remove --apply`"]
    if tool == "scrontab":
        # one small job per tick; its output goes to tick.log through the command itself
        lines += ["#SCRON --job-name=rea-tick", "#SCRON --time=10", "#SCRON --cpus-per-task=1"]
        lines += ["#SCRON --output=/dev/null"]
        for key in ("partition", "account", "qos"):
            value = getattr(slurm, key, None) if slurm else None
            if value:
                lines.append(f"#SCRON --{key}={value}")
    command = tick_command(ws_root, python, path).replace("%", r"\%")  # cron: % is a newline
    lines.append(f"{schedule(every_min)} {command}")
    return "\n".join([*lines, end]) + "\n"


def strip_block(table: str, ws_root: Path) -> str:
    """The table without rea's block for this workspace (other lines kept as they are)."""
    begin, end = _markers(ws_root)
    out, inside = [], False
    for line in table.splitlines(keepends=True):
        text = line.rstrip("\n")
        if text == begin:
            inside = True
        elif inside and text == end:
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out)


def merge_block(table: str, ws_root: Path, block: str) -> str:
    """The table with this workspace's block replaced by `block` (appended at the end)."""
    kept = strip_block(table, ws_root)
    if kept and not kept.endswith("\n"):
        kept += "\n"
    return kept + block


def read_table(tool: CronTool) -> str:
    """The user's current crontab/scrontab ("" when there is none)."""
    done = _run_tool(tool, ["-l"])
    if done.returncode == 0:
        return done.stdout
    if "no crontab" in done.stderr.lower() or "no scrontab" in done.stderr.lower():
        return ""
    raise SchedulerError(f"`{tool} -l` failed: {_first_line(done.stderr)}")


def write_table(tool: CronTool, table: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".cron", delete=False) as fh:
        fh.write(table)
        path = fh.name
    try:
        done = _run_tool(tool, [path])
    finally:
        os.unlink(path)
    if done.returncode != 0:
        raise SchedulerError(f"`{tool} FILE` refused the new table: {_first_line(done.stderr)}")


def _run_tool(tool: CronTool, args: list[str]) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(tool)
    if exe is None:
        other = "--crontab" if tool == "scrontab" else "--scrontab"
        raise UsageError(
            f"`{tool}` is not installed on this machine; try {other}, or print the entry "
            "without --apply and install it by hand"
        )
    try:
        return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SchedulerError(f"`{tool} {' '.join(args)}` failed: {exc}") from None


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["no message"])[0]


def workspace_cron_block(ws: Workspace, every_min: int = 5, tool: CronTool = "crontab") -> str:
    """This workspace's block, with this Python and this PATH."""
    return cron_block(
        ws.root, sys.executable, every_min, tool, ws.settings.slurm, os.environ.get("PATH")
    )


def install_cron(ws: Workspace, every_min: int = 5, tool: CronTool = "crontab") -> CronChange:
    """Install (or update) this workspace's tick entry; idempotent."""
    block = workspace_cron_block(ws, every_min, tool)
    current = read_table(tool)
    new = merge_block(current, ws.root, block)
    if new == current:
        return CronChange(tool, block, changed=False)
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    write_table(tool, new)
    return CronChange(tool, block, changed=True)


def remove_cron(ws: Workspace, tool: CronTool = "crontab") -> CronChange:
    """Remove this workspace's tick entry; other entries are kept."""
    current = read_table(tool)
    new = strip_block(current, ws.root)
    if new == current:
        return CronChange(tool, "", changed=False)
    write_table(tool, new)
    return CronChange(tool, "", changed=True)
