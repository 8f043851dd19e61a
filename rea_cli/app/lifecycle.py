"""What the human commands do to a campaign: plan, approve, launch, cancel, review.

Each function validates, then changes state through CampaignStore (journaled). Refusals are
RefusedError (exit 1), bad input UsageError (exit 2); nothing is half-written on either.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from rea_cli import budget
from rea_cli.app.approval import ApprovalBroken, verify_approval, write_approval
from rea_cli.app.planning import ACCEPTED_CONFIG
from rea_cli.app.resume import (
    LAUNCH_INTENT,
    apply_info,
    load_plan,
    low_disk,
    start_campaign,
)
from rea_cli.app.sync import sync_insights
from rea_cli.app.trials import round_plan
from rea_cli.campaign.journal import now_iso
from rea_cli.campaign.model import Campaign, Review
from rea_cli.campaign.state import CampaignState, TrialStatus
from rea_cli.campaign.store import CampaignStore
from rea_cli.errors import RefusedError, SchedulerError
from rea_cli.executor import submission
from rea_cli.executor.backends import make_scheduler
from rea_cli.executor.scheduler import (
    JobState,
    SubmissionRequest,
    campaign_job_prefix,
    workspace_tag,
)
from rea_cli.faults import crash_point
from rea_cli.fsutil import write_text_atomic
from rea_cli.identity import current_user
from rea_cli.planner import engine
from rea_cli.planner.plan import Plan, plan_hash
from rea_cli.text import check_user_text
from rea_cli.workspace import Workspace

log = logging.getLogger(__name__)


def load(ws: Workspace, campaign_id: str) -> tuple[CampaignStore, Campaign]:
    store = CampaignStore(ws, campaign_id)
    return store, store.load()


def approve_campaign(ws: Workspace, campaign_id: str, standing: str | None = None) -> Campaign:
    """Human checkpoint 1: bind the approval to the plan's hash and the budget. The approver
    is the OS user running this (never an environment variable), checked against [approval];
    `standing`: a scheduled run covered by its schedule's standing approval (see schedules)."""
    store = CampaignStore(ws, campaign_id)
    with store.lock(wait_s=5):
        c = store.load()
        if c.state is not CampaignState.PLANNED:
            raise RefusedError(
                f"campaign {campaign_id} is {c.state.value}, only a PLANNED campaign can be "
                f"approved; see `rea status {campaign_id}`"
            )
        digest = plan_hash(store.read_plan_bytes())
        if digest != c.plan_hash:
            raise RefusedError(
                f"{store.plan_path} changed since `rea plan` "
                f"({digest[:19]} != {c.plan_hash[:19]}); "
                "plan a new campaign instead of editing the plan file"
            )
        load_plan(store)  # a plan that no longer parses is refused here, not at launch
        policy = ws.settings.approval
        try:
            approval = write_approval(store, c, policy, standing)
        except FileExistsError:
            # an approval interrupted after its record was written: finish it if it holds
            try:
                approval = verify_approval(store, c, policy)
            except ApprovalBroken as exc:
                raise RefusedError(
                    f"{exc} ({store.approval_path} was left by an interrupted approval: "
                    "remove it and approve again)"
                ) from None
        crash_point("approval_written")
        store.transition(c, CampaignState.APPROVED, **approval.model_dump(mode="json"))
    sync_insights(ws, store, publish=True)
    return c


def launch_campaign(ws: Workspace, campaign_id: str) -> Campaign:
    """Submit the first step and its wake-up, then return: the campaign goes on by itself.

    The intent is journaled first: a launch killed before the campaign turns RUNNING is
    finished by the next `rea resume` or `rea tick` (nothing is submitted before RUNNING).
    """
    store = CampaignStore(ws, campaign_id)
    with store.lock(wait_s=5):
        c = store.load()
        plan = _approved_plan(store, c)
        low = low_disk(ws)
        if low:
            raise RefusedError(f"{low}, then launch {campaign_id} again; nothing was submitted")
        store.event(LAUNCH_INTENT, by=current_user().name)
        crash_point("launch_intent")
        sched = make_scheduler(ws)
        try:
            # a bad partition/account/time limit or resources no node has: nothing submitted
            start_campaign(store, c, plan, sched, by=current_user().name)
        except SchedulerError as exc:
            if c.state is not CampaignState.RUNNING:
                raise SchedulerError(
                    f"{exc}; the launch is recorded: `rea tick` (or `rea resume "
                    f"{campaign_id}`) finishes it once the scheduler answers"
                ) from None
            raise SchedulerError(
                f"{exc}; the campaign is RUNNING with its first submission unfinished: "
                f"`rea resume {campaign_id}` (or the next `rea tick`) finishes it, submitting "
                "nothing twice"
            ) from None
    sync_insights(ws, store, publish=True)
    if c.state is CampaignState.PAUSED:
        raise RefusedError(f"campaign {campaign_id} paused at launch: {c.pause_reason}")
    return c


@dataclass(frozen=True)
class DryRun:
    """What `rea launch` would submit: the request itself, and the backend's rendering of it."""

    request: SubmissionRequest
    rendered: list[tuple[str, str]]
    reserved_gpu_hours: float
    estimated_gpu_hours: float


def dry_run(ws: Workspace, campaign_id: str) -> DryRun:
    """Build the first round's request exactly as launch would, and render it; write nothing."""
    store = CampaignStore(ws, campaign_id)
    c = store.load()
    plan = _approved_plan(store, c, dry=True)
    sched = make_scheduler(ws)
    step = engine.next_step(plan, c, None, now_iso())
    if not isinstance(step, engine.Step):
        raise RefusedError(f"campaign {campaign_id} has nothing to run")
    rp = round_plan(store, plan, c, sched, step.phase, step.trials, kind=step.kind)
    request = submission.build_request(store, step.phase, submission.next_round(c, rp))
    te = plan.engine.te_gpu_hours
    return DryRun(
        request=request,
        rendered=sched.render(request),
        reserved_gpu_hours=rp.reserved_gpu_hours,
        estimated_gpu_hours=sum(t.cost for t in step.trials) * te,
    )


def _approved_plan(store: CampaignStore, c: Campaign, dry: bool = False) -> Plan:
    cid = store.campaign_id
    if c.state is not CampaignState.APPROVED and not (dry and c.state is CampaignState.PLANNED):
        if c.state is CampaignState.PLANNED:
            raise RefusedError(
                f"campaign {cid} is not approved; approve it with `rea approve {cid}`"
            )
        raise RefusedError(f"campaign {cid} is {c.state.value}, it can be launched only once")
    if c.state is CampaignState.APPROVED:
        verify_approval(store, c, store.ws.settings.approval)
    return load_plan(store)


def cancel_campaign(ws: Workspace, campaign_id: str) -> tuple[Campaign, int]:
    """Cancel every job of the campaign (arrays and wake-ups); the state stays consistent.

    Every job's final state is read back from the scheduler after the cancel: a task that had
    already finished keeps its own state and its measured time, and nothing stays reserved.
    """
    store = CampaignStore(ws, campaign_id)
    with store.lock(wait_s=120):
        c = store.load()
        if c.state.is_final or c.state is CampaignState.AWAITING_REVIEW:
            raise RefusedError(f"campaign {campaign_id} is {c.state.value}: nothing to cancel")
        cancelled: set[str] = set()
        if c.state in (CampaignState.RUNNING, CampaignState.PAUSED):
            sched = make_scheduler(ws)
            trial_jobs = {j.job_id for t in c.trials.values() for j in t.jobs}
            ids = set(trial_jobs)
            ids |= {r.wakeup_job_id for p in c.phases.values() for r in p.rounds if r.wakeup_job_id}
            prefix = campaign_job_prefix(workspace_tag(ws.root), campaign_id)
            ids |= {j.job_id for j in sched.find(prefix)}
            live = {jid for jid, i in sched.states(sorted(ids)).items() if not i.state.has_ended}
            sched.cancel(sorted(live))
            cancelled = live
            # jobs already ingested keep their record (its reason is the trainer's, the most
            # specific); the others get their final state from the scheduler
            open_jobs = [j for t in c.trials.values() for j in t.jobs if not j.has_ended]
            final = sched.states([j.job_id for j in open_jobs])
            for job in open_jobs:
                apply_info(job, final.get(job.job_id))
                if not job.has_ended:  # the scheduler has not caught up: it is cancelled
                    job.state = JobState.CANCELLED
            for t in c.trials.values():
                if t.status in (TrialStatus.PENDING, TrialStatus.SUBMITTED):
                    t.set_status(TrialStatus.CANCELLED)
            budget.refresh(c)
        store.transition(c, CampaignState.CANCELLED, cancelled_jobs=len(cancelled))
    sync_insights(ws, store, publish=True)
    return c, len(cancelled)


def acceptance_doubts(c: Campaign) -> list[str]:
    """Why accepting this proposal's change deserves a second look (empty: none). Keeping the
    baseline changes nothing, so accepting it raises no doubt."""
    p = c.proposal
    if p is None or p.keeps_baseline:
        return []
    doubts = []
    if not p.significant:
        doubts.append("its gain on valid is not significant (the 95% CI reaches zero)")
    if p.test_gain is not None and p.test_gain < 0:
        doubts.append(f"its gain on the test split is negative ({p.test_gain:+.3g})")
    return doubts


def review_campaign(
    ws: Workspace,
    campaign_id: str,
    *,
    accept: bool,
    note: str = "",
    force: bool = False,
) -> Campaign:
    """Human checkpoint 2: accept or reject the proposal. Accepting a change that is not
    significant or loses on the test split needs `force`."""
    check_user_text("--note", note)
    store = CampaignStore(ws, campaign_id)
    with store.lock(wait_s=5):
        c = store.load()
        if c.state is not CampaignState.AWAITING_REVIEW:
            raise RefusedError(
                f"campaign {campaign_id} is {c.state.value}; only a campaign AWAITING_REVIEW "
                "can be reviewed"
            )
        doubts = acceptance_doubts(c) if accept else []
        if doubts and not force:
            raise RefusedError(
                f"not accepted: {' and '.join(doubts)}; look at `rea report {campaign_id}`, "
                f"then accept with --force if you still want this change, or --reject"
            )
        c.review = Review(
            decision="accepted" if accept else "rejected",
            by=current_user().name,
            at=now_iso(),
            note=note,
        )
        if accept:
            # the accepted model config, ready to use: baseline + the proposal's change
            # indented: people read it and diff it
            text = json.dumps(accepted_config(store, c), indent=2, sort_keys=True) + "\n"
            write_text_atomic(store.dir / ACCEPTED_CONFIG, text)
        target = CampaignState.ACCEPTED if accept else CampaignState.REJECTED
        extra = {"forced": doubts} if doubts else {}
        store.transition(c, target, review=c.review.model_dump(), **extra)
    sync_insights(ws, store, publish=True)
    return c


def accepted_config(store: CampaignStore, c: Campaign) -> dict[str, Any]:
    from ranking_models.config import apply_delta

    plan = load_plan(store)
    delta = c.proposal.delta if c.proposal else {}
    return {
        "campaign_id": c.campaign_id,
        "hypothesis_id": c.proposal.hypothesis_id if c.proposal else "baseline",
        "delta": delta,
        "config": apply_delta(plan.baseline, delta),
        "data": plan.data,
    }
