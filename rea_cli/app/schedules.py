"""Recurring campaigns: `rea schedule add/approve/list/pause/resume/remove`, and the part of
`rea tick` that starts due runs.

Files, per schedule, in <workspace>/schedules/<name>/: template.json (written once by `add`;
its sha256 is what a standing approval binds), approval.json, state.json (pause flag, runs).
A due run is planned like `rea plan` does (with the workspace's insights history, so each run
builds on the last), approved under the standing approval, and launched. Its campaign id is
derived from the schedule and the due time, so a tick killed half-way is finished by the next
one instead of starting a second run.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from rea_cli.app.lifecycle import approve_campaign, launch_campaign
from rea_cli.app.planning import plan_campaign
from rea_cli.campaign.state import CampaignState
from rea_cli.campaign.store import CampaignStore
from rea_cli.errors import LockedError, ReaError, RefusedError, UsageError
from rea_cli.faults import crash_point
from rea_cli.fsutil import write_json_atomic
from rea_cli.identity import current_user
from rea_cli.planner.plan import baseline_config, data_spec
from rea_cli.schedules.model import (
    Period,
    RunRecord,
    RunView,
    ScheduleState,
    StandingApproval,
    Template,
    check_cron,
    check_name,
    decide,
    next_due,
    period_key,
    template_hash,
    used_in_period,
)
from rea_cli.schedules.model import parse_every as parse_every  # for the CLI's --every
from rea_cli.text import check_user_text
from rea_cli.workspace import Workspace

log = logging.getLogger(__name__)
STARTING = ("PLANNED", "APPROVED")  # a run's campaign between the plan and its launch


@dataclass(frozen=True)
class ScheduleFiles:
    ws: Workspace
    name: str

    @property
    def dir(self) -> Path:
        return self.ws.root / "schedules" / self.name

    @property
    def template(self) -> Path:
        return self.dir / "template.json"

    @property
    def approval(self) -> Path:
        return self.dir / "approval.json"

    @property
    def state(self) -> Path:
        return self.dir / "state.json"


@contextmanager
def schedules_lock(ws: Workspace, wait_s: float = 10.0) -> Iterator[None]:
    """One writer of schedule files at a time (the CLI commands and the tick)."""
    folder = ws.root / "schedules"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockedError(
                        f"{folder} is locked by another rea command (a tick starting a run?); "
                        "try again in a moment"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)


def _read(path: Path, model: type[BaseModel], what: str) -> Any:
    try:
        return model.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        why = first["msg"].removeprefix("Value error, ")
        raise UsageError(
            f"{path}: not a valid {what} ({where + ': ' if where else ''}{why}); "
            f"remove the schedule with `rea schedule remove {path.parent.name}` and add it again"
        ) from None


def load_template(files: ScheduleFiles) -> Template:
    t = _read(files.template, Template, "schedule template")
    if t is None:
        raise UsageError(f"no schedule {files.name!r} in {files.ws.root}; see `rea schedule list`")
    return t


def load_approval(files: ScheduleFiles) -> StandingApproval | None:
    return _read(files.approval, StandingApproval, "standing approval")


def load_state(files: ScheduleFiles) -> ScheduleState:
    return _read(files.state, ScheduleState, "schedule state") or ScheduleState()


def names(ws: Workspace) -> list[str]:
    folder = ws.root / "schedules"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "template.json").is_file())


# ---------------------------------------------------------------- commands


def add_schedule(
    ws: Workspace,
    name: str,
    *,
    model: str,
    dataset: str,
    cron: str | None,
    every_days: float | None,
    metric: str | None = None,
    profile: str = "standard",
    goal: str = "",
    now: datetime,
) -> Template:
    """Write the template; it runs nothing until a standing approval covers it."""
    files = ScheduleFiles(ws, check_name(name))
    check_user_text("--goal", goal)  # what each run's plan checks, refused now, not at each tick
    if (cron is None) == (every_days is None):
        raise UsageError("give exactly one of --cron EXPR or --every DURATION (e.g. 7d)")
    if cron is not None:
        check_cron(cron)
    metric = metric or ws.settings.planner.metric
    baseline_config(model, profile, metric)  # an unknown model, profile or metric: now
    data_spec(dataset, profile)
    template = Template(
        name=name,
        model=model,
        dataset=dataset,
        metric=metric,
        profile=profile,
        goal=goal,
        cron=cron,
        every_days=every_days,
        created_at=now.isoformat(),
        created_by=current_user().name,
    )
    with schedules_lock(ws):
        if files.template.exists():
            raise UsageError(
                f"schedule {name} already exists; remove it first (`rea schedule remove {name}`)"
            )
        files.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(files.template, template.model_dump(mode="json"))
        write_json_atomic(files.state, ScheduleState().model_dump(mode="json"))
    return template


def approve_schedule(
    ws: Workspace,
    name: str,
    *,
    run_gpu_hours: float,
    period_gpu_hours: float,
    period: Period,
    valid_until: datetime,
    now: datetime,
) -> StandingApproval:
    """The standing approval: every run of the template as it is now, within the budgets.
    The approver is the OS user running this, checked against [approval] like a campaign's
    (the template's author stands for the planner)."""
    from rea_cli.app.approval import check_approver
    from rea_cli.identity import owner_of

    files = ScheduleFiles(ws, check_name(name))
    load_template(files)
    approver = current_user()
    check_approver(ws.settings.approval, approver, owner_of(files.template))
    if run_gpu_hours > period_gpu_hours:
        raise UsageError(
            f"one run ({run_gpu_hours:g} GPU-h) exceeds the {period}'s budget "
            f"({period_gpu_hours:g} GPU-h): raise --period-budget or lower --run-budget"
        )
    if valid_until <= now:
        raise UsageError(f"--valid-until {valid_until.isoformat()} is not in the future")
    with schedules_lock(ws):
        approval = StandingApproval(
            schedule=name,
            by=approver.name,
            at=now.isoformat(),
            template_hash=template_hash(files.template.read_bytes()),
            run_gpu_hours=run_gpu_hours,
            period=period,
            period_gpu_hours=period_gpu_hours,
            valid_until=valid_until.isoformat(),
        )
        write_json_atomic(files.approval, approval.model_dump(mode="json"))
    return approval


def set_paused(ws: Workspace, name: str, paused: bool) -> ScheduleState:
    files = ScheduleFiles(ws, check_name(name))
    load_template(files)
    with schedules_lock(ws):
        state = load_state(files)
        state.paused = paused
        write_json_atomic(files.state, state.model_dump(mode="json"))
    return state


def remove_schedule(ws: Workspace, name: str) -> list[str]:
    """Remove the schedule's files; its campaigns stay (and any running one goes on).
    Returns the campaign ids it had started. A damaged schedule is removed too: removing it
    is what every error about its files says to do."""
    files = ScheduleFiles(ws, check_name(name))
    missing = UsageError(f"no schedule {name!r} in {ws.root}; see `rea schedule list`")
    if not files.dir.is_dir():
        raise missing  # before the lock: an unknown name writes nothing
    with schedules_lock(ws):
        if not files.dir.is_dir():
            raise missing
        try:
            runs = [r.campaign_id for r in load_state(files).runs]
        except UsageError:
            runs = []  # an unreadable state.json: its campaigns stay all the same
        shutil.rmtree(files.dir)
    return runs


class ScheduleSummary(BaseModel):
    name: str
    cadence: str
    model: str
    dataset: str
    metric: str | None
    profile: str
    paused: bool
    approved_by: str | None
    approval_valid: bool  # bound to the current template and not expired
    run_gpu_hours: float | None
    period: str | None
    period_gpu_hours: float | None
    used_this_period: float
    valid_until: str | None
    runs: list[dict[str, Any]]
    next_due: str | None
    note: str


def list_schedules(ws: Workspace, now: datetime) -> list[ScheduleSummary]:
    out = []
    for name in names(ws):
        files = ScheduleFiles(ws, name)
        t, approval, state = load_template(files), load_approval(files), load_state(files)
        runs = run_views(ws, state)
        current = template_hash(files.template.read_bytes())
        d = decide(t, approval, state, current, runs, now)
        last = state.runs[-1] if state.runs else None
        nxt = (
            next_due(t, _at(approval.at), _at(last.due_at) if last else None) if approval else None
        )
        out.append(
            ScheduleSummary(
                name=name,
                cadence=t.cadence,
                model=t.model,
                dataset=t.dataset,
                metric=t.metric,
                profile=t.profile,
                paused=state.paused,
                approved_by=approval.by if approval else None,
                approval_valid=bool(
                    approval
                    and approval.template_hash == current
                    and now <= _at(approval.valid_until)
                ),
                run_gpu_hours=approval.run_gpu_hours if approval else None,
                period=approval.period if approval else None,
                period_gpu_hours=approval.period_gpu_hours if approval else None,
                used_this_period=round(
                    used_in_period(state, runs, period_key(now, approval.period)), 6
                )
                if approval
                else 0.0,
                valid_until=approval.valid_until if approval else None,
                runs=[
                    {
                        "campaign_id": r.campaign_id,
                        "due_at": r.due_at,
                        "started_at": r.started_at,
                        "state": runs[r.campaign_id].state if r.campaign_id in runs else "GONE",
                    }
                    for r in state.runs
                ],
                next_due=nxt.isoformat() if nxt else None,
                note=d.reason,
            )
        )
    return out


def _at(text: str) -> datetime:
    from rea_cli.clock import parse_time

    return parse_time(text, "time")


def run_views(ws: Workspace, state: ScheduleState) -> dict[str, RunView]:
    views = {}
    for r in state.runs:
        try:
            c = CampaignStore(ws, r.campaign_id).load()
        except ReaError:
            continue  # removed by hand: it no longer holds budget nor blocks the next run
        views[r.campaign_id] = RunView(
            c.campaign_id, c.state.value, c.budget.spent_gpu_hours, c.budget.approved_gpu_hours
        )
    return views


# ---------------------------------------------------------------- the tick


@dataclass(frozen=True)
class ScheduleTick:
    name: str
    action: str  # started | waiting | none | error
    reason: str
    campaign_id: str | None = None
    stuck: list[str] = field(default_factory=list)


def tick_schedules(ws: Workspace, now: datetime) -> list[ScheduleTick]:
    """Start every due run that its standing approval covers; report the others."""
    out = []
    for name in names(ws):
        try:
            out.append(_tick_one(ws, name, now))
        except ReaError as exc:
            log.warning("tick: schedule %s: %s", name, exc)
            out.append(ScheduleTick(name, "error", str(exc), stuck=[f"schedule {name}: {exc}"]))
    return out


def _tick_one(ws: Workspace, name: str, now: datetime) -> ScheduleTick:
    files = ScheduleFiles(ws, name)
    with schedules_lock(ws, wait_s=0):
        t, approval, state = load_template(files), load_approval(files), load_state(files)
        runs = run_views(ws, state)
        current = template_hash(files.template.read_bytes())
        last = state.runs[-1] if state.runs else None
        valid = approval is not None and approval.template_hash == current and not state.paused
        if valid and last is not None and _unfinished(last, runs):
            # a tick (or its plan) stopped half-way through starting this run: finish it
            cid, reason = last.campaign_id, f"finished starting run {last.campaign_id}"
        else:
            d = decide(t, approval, state, current, runs, now)
            if d.action != "start":
                stuck = [f"schedule {name}: {d.reason}"] if d.stuck else []
                action = "waiting" if d.action == "wait" else "none"
                return ScheduleTick(name, action, d.reason, None, stuck)
            assert approval is not None and d.due_at is not None
            cid, reason = f"{name}-{d.due_at:%Y%m%d%H%M}", d.reason
            state.runs.append(
                RunRecord(
                    campaign_id=cid,
                    due_at=d.due_at.isoformat(),
                    started_at=now.isoformat(),
                    period=period_key(now, approval.period),
                )
            )
            # recorded before anything is planned: a run is never started twice
            write_json_atomic(files.state, state.model_dump(mode="json"))
    crash_point("schedule_recorded")
    assert approval is not None
    start_run(ws, t, approval, cid)
    return ScheduleTick(name, "started", f"{reason}: campaign {cid} launched", cid)


def _unfinished(run: RunRecord, runs: dict[str, RunView]) -> bool:
    """Recorded, but its campaign is not launched yet (or was never planned)."""
    return run.campaign_id not in runs or runs[run.campaign_id].state in STARTING


def start_run(ws: Workspace, t: Template, approval: StandingApproval, cid: str) -> None:
    """Plan (or finish planning), approve under the standing approval, launch. Resumable: a
    campaign left PLANNED or APPROVED by an interrupted tick is taken up where it stopped."""
    store = CampaignStore(ws, cid)
    if not store.campaign_path.exists():
        if store.dir.exists():
            shutil.rmtree(store.dir)  # a plan interrupted before campaign.json: start again
        plan_campaign(
            ws,
            model=t.model,
            dataset=t.dataset,
            budget_gpu_hours=approval.run_gpu_hours,
            goal=t.goal or f"scheduled run of {t.name}",
            metric=t.metric,
            profile=t.profile,
            campaign_id=cid,
        )
    c = store.load()
    if c.state is CampaignState.PLANNED:
        if c.budget.approved_gpu_hours > approval.run_gpu_hours + 1e-9:
            raise RefusedError(
                f"campaign {cid} asks {c.budget.approved_gpu_hours:g} GPU-h, more than the "
                f"standing approval's {approval.run_gpu_hours:g} per run; approve it yourself "
                f"(`rea approve {cid}`), cancel it (`rea cancel {cid}`) or raise the run budget "
                f"(`rea schedule approve {t.name} --run-budget ...`)"
            )
        approve_campaign(
            ws, cid, standing=f"schedule {t.name}, approved by {approval.by} at {approval.at}"
        )
        c = store.load()
    if c.state is CampaignState.APPROVED:
        launch_campaign(ws, cid)
