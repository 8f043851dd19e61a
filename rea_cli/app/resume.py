"""The resume step: what every wake-up runs. Lock, reconcile, ingest, diagnose, decide, submit,
publish, exit. Running it twice, or again after a crash at any line, gives the same end state:
every decision is saved before its side effect, and every side effect is idempotent or
reconciled by job name (see executor/submission.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from ranking_models.contracts import (
    EXIT_DISK_FULL,
    AttemptResult,
    AttemptStart,
    ContractError,
    TrialSpec,
    read_contract,
)
from rea_cli import budget
from rea_cli.app import reuse
from rea_cli.app.approval import ApprovalBroken, verify_approval
from rea_cli.app.search import OptunaSearch
from rea_cli.app.sync import catch_up
from rea_cli.app.trials import round_plan, trial_config, trial_spec
from rea_cli.campaign.journal import now_iso
from rea_cli.campaign.model import (
    Campaign,
    CurvePoint,
    Gate,
    JobRecord,
    PhaseRecord,
    Round,
    TrialRecord,
)
from rea_cli.campaign.state import CampaignState, PhaseStatus, RoundStatus, TrialStatus
from rea_cli.campaign.store import CampaignStore
from rea_cli.errors import ReaError, RefusedError, UsageError, is_disk_full, os_error
from rea_cli.executor import submission
from rea_cli.executor.backends import make_scheduler, trial_resources, wakeup_resources
from rea_cli.executor.scheduler import (
    JobInfo,
    JobState,
    Scheduler,
    campaign_job_prefix,
    never_starts,
    workspace_tag,
)
from rea_cli.faults import crash_point
from rea_cli.fsutil import free_mb
from rea_cli.planner import engine
from rea_cli.planner.engine import TrialDef
from rea_cli.planner.engine.common import lineage
from rea_cli.planner.plan import Plan, gpus_per_trial, plan_hash
from rea_cli.runbooks import (
    MEM_KEY,
    Decision,
    Failure,
    Footprint,
    choose_action,
    diagnose,
    load_runbooks,
)
from rea_cli.workspace import Workspace

log = logging.getLogger(__name__)

RETRY_ACTIONS = ("retry", "retry_with")
MAX_FAILED_RESUMES = 3


@dataclass(frozen=True)
class ResumeOutcome:
    action: str  # noop | waiting | submitted | paused | awaiting_review
    detail: str


def load_plan(store: CampaignStore) -> Plan:
    try:
        return Plan.model_validate_json(store.read_plan_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise UsageError(
            f"{store.plan_path} is damaged ({where}: {first['msg']}); restore the approved "
            "plan, or cancel the campaign and plan a new one"
        ) from None


def resume_campaign(
    ws: Workspace, campaign_id: str, scheduler: Scheduler | None = None
) -> ResumeOutcome:
    store = CampaignStore(ws, campaign_id)
    store.load()  # unknown campaign -> clear error before taking any lock
    try:
        with store.lock(wait_s=120):
            campaign = store.load()
            crash_point("loaded")
            outcome = _resume_locked(store, campaign, scheduler)
    finally:
        # whatever happened (a step, a pause, a noop, a failure), the DB and the analyst copy
        # catch up with the files: a sync that an earlier run missed is done now
        catch_up(ws, store)
    crash_point("published")
    return outcome


def _resume_locked(
    store: CampaignStore, campaign: Campaign, scheduler: Scheduler | None
) -> ResumeOutcome:
    if campaign.state is CampaignState.APPROVED and launch_pending(store):
        # `rea launch` was killed before the campaign turned RUNNING: finish it
        sched = scheduler or make_scheduler(store.ws)
        outcome = start_campaign(store, campaign, _bound_plan(store), sched, by="rea resume")
        store.event("resume_done", action=outcome.action, detail=outcome.detail)
        return outcome
    if campaign.state is CampaignState.PAUSED and campaign.pause_kind is not None:
        held = hold_reason(store, campaign)
        if held is not None:
            return ResumeOutcome("noop", f"still paused: {held[1]}")
        reason = f"the cause of the pause is gone ({campaign.pause_kind})"
        campaign.pause_reason = campaign.pause_kind = None
        store.transition(campaign, CampaignState.RUNNING, reason=reason)
    if campaign.state is not CampaignState.RUNNING:
        return ResumeOutcome("noop", f"campaign is {campaign.state.value}: nothing to do")
    held = hold_reason(store, campaign)
    if held is not None:
        return _pause(store, campaign, *held)
    sched = scheduler or make_scheduler(store.ws)
    try:
        outcome = _step(store, load_plan(store), campaign, sched)
    except ReaError:
        raise  # refusals and scheduler outages: a later wake-up or tick tries again
    except OSError as exc:
        if not is_disk_full(exc):
            _record_failure(store, exc, sched)
            raise
        # a full disk is not the campaign's fault: pause (if it can still be written)
        return _pause(store, store.load(), "disk_full", f"{os_error(exc, 'writing')}")
    except Exception as exc:
        _record_failure(store, exc, sched)
        raise
    store.event("resume_done", action=outcome.action, detail=outcome.detail)
    return outcome


PauseKind = Literal["approval", "disk_full"]


def hold_reason(store: CampaignStore, c: Campaign) -> tuple[PauseKind, str] | None:
    """Why nothing may be submitted now, or None: the approval no longer binds what is on
    disk, or the workspace's disk is (nearly) full. Both lift by themselves once fixed."""
    try:
        verify_approval(store, c, store.ws.settings.approval)
    except ApprovalBroken as exc:
        return "approval", str(exc)
    low = low_disk(store.ws)
    return ("disk_full", low) if low else None


def low_disk(ws: Workspace) -> str | None:
    """Why the workspace's disk is too full to go on, or None ([guardrails] min_free_mb)."""
    floor = ws.settings.guardrails.min_free_mb
    free = free_mb(ws.root)
    if free >= floor:
        return None
    return (
        f"only {free:.0f} MB free on the filesystem of {ws.root} ([guardrails] min_free_mb = "
        f"{floor}): free some space"
    )


def _pause(store: CampaignStore, c: Campaign, kind: PauseKind, why: str) -> ResumeOutcome:
    """Pause, submitting nothing and burning no retry; resume and tick lift it once the cause
    is gone."""
    cid = c.campaign_id
    c.pause_kind = kind
    c.pause_reason = (
        f"{why}; nothing more is submitted until then, and the campaign goes on by itself "
        f"(next `rea tick`, or `rea resume {cid}`); or `rea cancel {cid}`"
    )
    store.transition(c, CampaignState.PAUSED, reason=c.pause_reason, kind=kind)
    return ResumeOutcome("paused", c.pause_reason)


# ---------------------------------------------------------------- launch

LAUNCH_INTENT = "launch_intent"


def launch_pending(store: CampaignStore) -> bool:
    """`rea launch` journaled its intent and neither turned the campaign RUNNING nor was
    refused since (it was killed, or Slurm did not answer)."""
    for e in reversed(store.events()):
        if e["event"] == LAUNCH_INTENT:
            return True
        if e["event"] in ("launch_refused", "state"):
            return False
    return False


def check_resources(ws: Workspace, plan: Plan, sched: Scheduler) -> None:
    """What every phase and the wake-ups would ask for, checked against the cluster before
    anything is submitted (UsageError names the rea.toml key to change)."""
    validate = getattr(sched, "validate", None)  # backends that can check requests up front
    if validate is None:
        return
    for p in plan.phases:
        validate(trial_resources(ws.settings, p.time_limit_min, p.gpus_per_trial))
    validate(wakeup_resources(ws.settings))


def start_campaign(
    store: CampaignStore, c: Campaign, plan: Plan, sched: Scheduler, *, by: str
) -> ResumeOutcome:
    """APPROVED -> RUNNING, then the first step: what `rea launch` does once it journaled its
    intent, and what a resume or tick does for a launch killed before that. A request the
    cluster can never run is refused with nothing submitted (the intent is then withdrawn)."""
    try:
        check_resources(store.ws, plan, sched)
    except UsageError as exc:
        store.event("launch_refused", error=str(exc))
        raise
    store.transition(c, CampaignState.RUNNING, by=by)
    return advance(store, plan, c, sched)


def _bound_plan(store: CampaignStore) -> Plan:
    """The plan, if it is still the one approved."""
    approval = store.approval()
    digest = plan_hash(store.read_plan_bytes())
    if approval is None or digest != approval.plan_hash:
        store.event("launch_refused", error="the plan changed after approval")
        raise RefusedError(
            f"{store.plan_path} is not the approved plan; restore it or plan a new campaign"
        )
    return load_plan(store)


def _record_failure(store: CampaignStore, exc: Exception, sched: Scheduler) -> None:
    """Journal an unexpected error; after MAX_FAILED_RESUMES in a row the campaign is FAILED
    (a deterministic error would otherwise make every wake-up and tick fail the same way)."""
    error = f"{type(exc).__name__}: {exc}"
    store.event("resume_failed", error=error)
    outcomes = [e for e in store.events() if e["event"] in ("resume_done", "resume_failed")]
    recent = outcomes[-MAX_FAILED_RESUMES:]
    if len(recent) == MAX_FAILED_RESUMES and all(e["event"] == "resume_failed" for e in recent):
        campaign = store.load()
        campaign.pause_reason = f"{MAX_FAILED_RESUMES} resume steps failed in a row: {error}"
        store.transition(campaign, CampaignState.FAILED, reason=campaign.pause_reason)
        # nothing will ever read their results: stop the campaign's jobs (wake-ups included)
        prefix = campaign_job_prefix(workspace_tag(store.ws.root), store.campaign_id)
        live = [
            j.job_id
            for j in sched.find(prefix)
            if not j.state.has_ended and j.job_id != _current_job_id()
        ]
        if live:
            sched.cancel(live)


def _step(store: CampaignStore, plan: Plan, c: Campaign, sched: Scheduler) -> ResumeOutcome:
    rnd = c.current_round()
    if c.phase is not None and rnd is not None:
        current = c.phase
        if rnd.status is not RoundStatus.RELEASED:
            # an earlier launch/resume died mid-submission: finish it, then carry on as usual
            submission.complete_round(store, c, sched, current)
        reconcile(c, sched, current)
        store.save(c)
        crash_point("reconciled")
        waiting = [tid for tid, t in c.trials_of(current).items() if t.last_job_open]
        blocked = _never_start(c, waiting)
        if blocked:
            return _pause_blocked(store, c, sched, blocked)
        if waiting:
            _ensure_wakeup(store, c, sched, current, rnd, waiting)
            return ResumeOutcome("waiting", f"{len(waiting)} trial(s) of {current} still running")

        ingest_attempts(store, c, plan)
        store.save(c)
        crash_point("ingested")  # results reach DuckDB at the end of this step (or the next)

        diagnose_failures(store, c, plan, sched)
        store.save(c)
        crash_point("diagnosed")

        paused = _pause_reason(store, c, current)
        if paused:
            c.pause_reason = paused
            store.transition(c, CampaignState.PAUSED, reason=paused)
            return ResumeOutcome("paused", paused)
        retries = {tid: t for tid, t in c.trials_of(current).items() if _needs_retry(t)}
        if retries:
            defs = [
                TrialDef(
                    tid,
                    t.hypothesis_id,
                    t.seed,
                    dict(t.fidelity),
                    lineage(t.hypothesis_id, t.seed),
                    prune=t.prune,
                )
                for tid, t in retries.items()
            ]
            # a retry the budget cannot hold is given up (the trial stays failed) instead of
            # pausing the campaign: the engine then decides with what is left
            fitted = _fit(plan, c, sched, current, defs, store)
            kept = {d.trial_id for d in fitted}
            for d in defs:
                if d.trial_id not in kept:
                    _drop_retry(store, c, d.trial_id)
            if fitted:
                overrides = {tid: t.overrides for tid, t in retries.items() if t.overrides}
                # one array, one --mem: the most any of its trials was given by a runbook
                mem = max(
                    (t.mem_gb for tid, t in retries.items() if tid in kept and t.mem_gb),
                    default=None,
                )
                rp = round_plan(
                    store, plan, c, sched, current, fitted, overrides, kind="retry", mem_gb=mem
                )
                refused = _submit(store, c, sched, rp)
                if refused:
                    return refused
                return ResumeOutcome("submitted", f"retrying {len(fitted)} trial(s) of {current}")
            store.save(c)
    return advance(store, plan, c, sched)


def _drop_retry(store: CampaignStore, c: Campaign, trial_id: str) -> None:
    job = c.trials[trial_id].jobs[-1]
    why = "the budget left cannot hold its retry's worst case"
    job.action = "give_up"
    job.reason = f"{job.reason}; {why}" if job.reason else why
    store.event("retry_dropped", trial_id=trial_id, detail=why)


MAX_DECISIONS = 50  # steps decided in one resume (reused trials let the engine move on at once)


def advance(store: CampaignStore, plan: Plan, c: Campaign, sched: Scheduler) -> ResumeOutcome:
    """Ask the engine what comes next; reuse identical trials measured before; submit the
    step's trials that are new, as many as the budget's worst case allows; or propose."""
    search = OptunaSearch(store.dir / "search", store.campaign_id, seed=plan.engine.seed)
    exhausted = False

    def worst_te(trials: Sequence[TrialDef]) -> float:
        """What the guard reserves to submit these trials as one round, in TE."""
        rp = round_plan(store, plan, c, sched, "exploitation", trials)
        return rp.reserved_gpu_hours / max(engine.te_gpu_hours(plan, c), 1e-12)

    for _ in range(MAX_DECISIONS):
        decision = engine.next_step(
            plan, c, search, now_iso(), exhausted=exhausted, worst_te=worst_te
        )
        _record_gates(store, c, decision.gates)
        if isinstance(decision, engine.Finish):
            return _finish(store, c, decision)
        step = decision
        c.hypotheses.update(step.new_hypotheses)
        _enter_phase(c, step)
        todo = [t for t in step.trials if t.trial_id not in c.trials]
        todo = [t for t in todo if not _reuse(store, plan, c, step.phase, t)]
        if not todo:
            store.save(c)
            continue  # everything of this step was known already: decide again
        fitted = _fit(plan, c, sched, step.phase, todo, store)
        if not fitted:
            exhausted = True  # not even one trial's worst case fits what is left
            continue
        store.save(c)
        crash_point("decided")
        rp = round_plan(store, plan, c, sched, step.phase, fitted, kind=step.kind)
        refused = _submit(store, c, sched, rp)
        if refused:
            return refused
        store.event("step", phase=step.phase, kind=step.kind, note=step.note, trials=len(fitted))
        return ResumeOutcome("submitted", f"{step.phase} ({step.kind}): {len(fitted)} trial(s)")
    raise RuntimeError(f"the engine decided {MAX_DECISIONS} steps without submitting any")


def _enter_phase(c: Campaign, step: engine.Step) -> None:
    """Phases before the step's are over (done, or skipped when they never ran)."""
    order = ("validation", "combination", "exploitation")
    for name in order[: order.index(step.phase)]:
        rec = c.phases.setdefault(name, PhaseRecord())
        if rec.status in (PhaseStatus.PENDING, PhaseStatus.SUBMITTED):
            rec.set_status(PhaseStatus.DONE if rec.rounds else PhaseStatus.SKIPPED)
    if step.selected is not None:
        val = c.phases.setdefault("validation", PhaseRecord())
        if val.selected is None:
            val.selected = list(step.selected)
    c.phases.setdefault(step.phase, PhaseRecord())
    c.phase = step.phase


def _record_gates(store: CampaignStore, c: Campaign, gates: dict[str, Gate]) -> None:
    for phase, gate in gates.items():
        rec = c.phases.setdefault(phase, PhaseRecord())
        if rec.gate != gate:
            rec.gate = gate
            store.event("gate", phase=phase, **gate.model_dump())


def _finish(store: CampaignStore, c: Campaign, finish: engine.Finish) -> ResumeOutcome:
    for rec in c.phases.values():
        if rec.status in (PhaseStatus.PENDING, PhaseStatus.SUBMITTED):
            rec.set_status(PhaseStatus.DONE if rec.rounds else PhaseStatus.SKIPPED)
    c.proposal = finish.proposal
    c.phase = None
    budget.refresh(c)
    store.transition(c, CampaignState.AWAITING_REVIEW, proposal=c.proposal.summary)
    return ResumeOutcome("awaiting_review", c.proposal.summary)


def _reuse(store: CampaignStore, plan: Plan, c: Campaign, phase: str, t: TrialDef) -> bool:
    """Record `t` as succeeded from an identical trial measured before (no job)."""
    spec = trial_spec(store, plan, c, phase, t)
    key = reuse.trial_key(spec, _fingerprint(plan))
    cached = reuse.lookup(store.ws, key)
    if cached is None:
        return False
    record = TrialRecord(
        phase=phase, hypothesis_id=t.hypothesis_id, seed=t.seed, fidelity=dict(t.fidelity), key=key
    )
    take_result(record, cached.result, plan.metric)
    record.reused_from = f"{cached.campaign_id}/{cached.trial_id}"
    record.device_time_s = 0.0
    record.set_status(TrialStatus.SUCCEEDED)
    c.trials[t.trial_id] = record
    store.event("trial_reused", trial_id=t.trial_id, reused_from=record.reused_from)
    return True


def _fingerprint(plan: Plan) -> dict[str, Any] | None:
    return plan.data_fingerprint.model_dump() if plan.data_fingerprint else None


def _fit(
    plan: Plan,
    c: Campaign,
    sched: Scheduler,
    phase: str,
    todo: list[TrialDef],
    store: CampaignStore,
) -> list[TrialDef]:
    """The highest-priority trials whose worst case, together, fits the budget left (the
    worst case grows with the number of trials: a binary search over how many)."""
    ordered = sorted(todo, key=lambda t: -t.priority)

    def fits(n: int) -> bool:
        rp = round_plan(store, plan, c, sched, phase, ordered[:n])
        return budget.check(c, rp.reserved_gpu_hours).ok

    low, high = 0, len(ordered)  # fits(low) holds (nothing always fits)
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return ordered[:low]


def _submit(
    store: CampaignStore, c: Campaign, sched: Scheduler, rp: submission.RoundPlan
) -> ResumeOutcome | None:
    """Submit a round; a refusal pauses the campaign (None: submitted)."""
    try:
        submission.submit_round(store, c, sched, rp)
    except RefusedError as exc:
        return _budget_pause(store, c, str(exc))
    except UsageError as exc:
        # the cluster can never run this request (rea.toml or the cluster changed since the
        # launch): every wake-up and tick would fail the same way, so a human must look
        reason = f"{exc}; then `rea cancel {c.campaign_id}` and plan again"
        store.event("submission_refused", detail=str(exc))
        c.pause_reason = reason
        store.transition(c, CampaignState.PAUSED, reason=reason)
        return ResumeOutcome("paused", reason)
    return None


def _budget_pause(store: CampaignStore, c: Campaign, reason: str) -> ResumeOutcome:
    store.event("budget_refused", detail=reason)
    c.pause_reason = reason
    store.transition(c, CampaignState.PAUSED, reason=reason)
    return ResumeOutcome("paused", reason)


# ---------------------------------------------------------------- reconcile


def reconcile(c: Campaign, sched: Scheduler, phase: str) -> None:
    """Refresh the scheduler's view of every unfinished job of `phase`."""
    open_jobs = {
        t.jobs[-1].job_id: t.jobs[-1] for t in c.trials_of(phase).values() if t.last_job_open
    }
    if not open_jobs:
        return
    infos = sched.states(list(open_jobs))
    for jid, job in open_jobs.items():
        apply_info(job, infos.get(jid))
    budget.refresh(c)


def _never_start(c: Campaign, waiting: list[str]) -> list[tuple[str, JobRecord]]:
    """Waiting trials whose job pends for a reason that can never clear."""
    jobs = [(tid, c.trials[tid].jobs[-1]) for tid in waiting]
    return [(tid, j) for tid, j in jobs if never_starts(j.state, j.reason)]


def _pause_blocked(
    store: CampaignStore, c: Campaign, sched: Scheduler, blocked: list[tuple[str, JobRecord]]
) -> ResumeOutcome:
    """Trials that can never start: stop the campaign's jobs (nothing would ever wake it up:
    the wake-up waits for them) and pause it with the scheduler's reason."""
    tid, job = blocked[0]
    reason = (
        f"trial {tid} (job {job.job_id}) can never start: the scheduler says {job.reason}; "
        f"{_unblock_hint(job.reason or '')}, then `rea cancel {c.campaign_id}` and plan again"
    )
    prefix = campaign_job_prefix(workspace_tag(store.ws.root), store.campaign_id)
    live = {j.job_id for j in sched.find(prefix) if not j.state.has_ended}
    live |= {j.job_id for t in c.trials.values() for j in t.jobs if not j.has_ended}
    live.discard(_current_job_id() or "")
    sched.cancel(sorted(live))
    open_jobs = [j for t in c.trials.values() for j in t.jobs if not j.has_ended]
    final = sched.states([j.job_id for j in open_jobs])
    for j in open_jobs:
        apply_info(j, final.get(j.job_id))
        if not j.has_ended:  # the scheduler has not caught up: it is cancelled
            j.state = JobState.CANCELLED
    budget.refresh(c)
    store.event("never_starts", trial_id=tid, job_id=job.job_id, reason=job.reason)
    c.pause_reason = reason
    store.transition(c, CampaignState.PAUSED, reason=reason)
    return ResumeOutcome("paused", reason)


def _unblock_hint(reason: str) -> str:
    if reason.startswith(("Partition", "BadConstraints")):
        return (
            "the request exceeds what its partition offers: lower [slurm] cpus_per_trial, "
            "mem_gb or gpus_per_trial (or fix partition/constraint) in rea.toml"
        )
    if reason.startswith(("Invalid", "Account", "QOS", "Assoc")):
        return "the account, QOS or their limits refuse it: fix [slurm] account/qos in rea.toml"
    return "fix what it names"


def apply_info(job: JobRecord, info: JobInfo | None) -> None:
    if info is None:
        return
    job.state = info.state
    job.exit_code = info.exit_code if info.exit_code is not None else job.exit_code
    job.node = info.node or job.node
    job.started_at = _iso(info.started_at) or job.started_at
    job.ended_at = _iso(info.ended_at) or job.ended_at
    job.reason = info.reason or job.reason
    job.restarts = max(job.restarts, info.restarts)
    gpus = budget.devices(info.gpus or job.gpus)
    if info.elapsed_s is not None:
        job.gpu_seconds = info.elapsed_s * gpus
    elif info.started_at and info.ended_at:
        job.gpu_seconds = max(0.0, (info.ended_at - info.started_at).total_seconds()) * gpus


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _current_job_id() -> str | None:
    """The scheduler job this process runs in (a wake-up), if any."""
    return os.environ.get("REA_JOB_ID") or os.environ.get("SLURM_JOB_ID")


def _ensure_wakeup(
    store: CampaignStore, c: Campaign, sched: Scheduler, phase: str, rnd: Round, waiting: list[str]
) -> None:
    """Trials are still running: make sure some wake-up will fire after them."""
    me = _current_job_id()
    if rnd.wakeup_job_id and rnd.wakeup_job_id != me:
        info = sched.states([rnd.wakeup_job_id]).get(rnd.wakeup_job_id)
        if info is not None and not info.state.has_ended:
            return
    ids = [c.trials[tid].jobs[-1].job_id for tid in waiting]
    rnd.wakeup_job_id = submission.resubmit_wakeup(store, sched, phase, rnd, ids)
    store.save(c)
    store.event("wakeup_resubmitted", phase=phase, round=rnd.round, wakeup_job_id=rnd.wakeup_job_id)


# ---------------------------------------------------------------- ingest


def attempt_dirs(store: CampaignStore, trial_id: str) -> list[Path]:
    root = store.attempts_dir(trial_id)
    if not root.is_dir():
        return []
    return sorted(
        (p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )


def _attempt_for_job(dirs: list[Path], job_id: str) -> Path | None:
    """The latest attempt folder written by job `job_id` (a requeued job writes several)."""
    for d in reversed(dirs):
        try:
            start: AttemptStart = read_contract(d / "attempt.json", AttemptStart)
        except ContractError:
            continue
        if start.job_id == job_id:
            return d
    return None


@dataclass(frozen=True)
class AttemptOutcome:
    """What one attempt's result.json says, read once, judged once."""

    result: AttemptResult | None
    failure_kind: str | None  # None when the attempt succeeded with usable metrics
    message: str | None


def read_outcome(folder: Path | None, job: JobRecord, metric: str) -> AttemptOutcome:
    if folder is None or not (folder / "result.json").exists():
        kind = "missing_result" if job.state is JobState.COMPLETED else None
        return AttemptOutcome(None, kind, None)
    try:
        result: AttemptResult = read_contract(folder / "result.json", AttemptResult)
    except ContractError as exc:
        return AttemptOutcome(None, "invalid_result", str(exc))
    if result.status == "failed":
        failure = result.failure
        return AttemptOutcome(
            result, failure.kind if failure else "error", failure.message if failure else None
        )
    bad = result.non_finite()
    if bad or result.metric(metric) is None:
        what = ", ".join(bad) if bad else f"valid.{metric} missing"
        return AttemptOutcome(
            result, "invalid_result", f"the trial reported non-finite or missing metrics: {what}"
        )
    return AttemptOutcome(result, None, None)


def take_result(t: TrialRecord, result: AttemptResult, metric: str) -> None:
    """A trial's figures from a usable result (read once, kept on the record)."""
    t.metric_value = result.metric(metric)
    t.test_value = result.metric(metric, "test")
    t.best_epoch = result.best_epoch
    t.stopped = result.stopped
    t.samples_seen = result.samples_seen or 0
    t.device_time_s += result.device_time_s or 0.0
    t.curve = [
        CurvePoint(
            epoch=p.epoch,
            value=p.valid.get(metric),
            train_loss=p.train_loss,
            valid_loss=p.valid.get("logloss"),
        )
        for p in result.curve
    ]


# failure kinds that are the hypothesis's own outcome, not a systemic problem of the campaign
OWN_FAILURES = ("nan_loss", "loss_explosion", "grad_explosion", "invalid_result")


def ingest_attempts(store: CampaignStore, c: Campaign, plan: Plan) -> None:
    """Trial outcome from the attempt's result.json and the job's final state."""
    for tid, t in c.trials_of(c.phase or "").items():
        if t.status is not TrialStatus.SUBMITTED or not t.jobs:
            continue
        job = t.jobs[-1]
        dirs = attempt_dirs(store, tid)
        t.attempts = len(dirs)
        outcome = read_outcome(_attempt_for_job(dirs, job.job_id), job, plan.metric)
        result = outcome.result
        if result is not None and not job.gpu_seconds and result.wall_time_s:
            job.gpu_seconds = float(result.wall_time_s) * budget.devices(job.gpus)
        if outcome.failure_kind is None and result is not None:
            take_result(t, result, plan.metric)
            t.diagnosis = None  # a trial that succeeded on retry is not diagnosed any more
            t.set_status(TrialStatus.SUCCEEDED)
            _remember(store, plan, tid, t, result)
            continue
        if result is not None:
            t.device_time_s += result.device_time_s or 0.0
        t.set_status(TrialStatus.FAILED)
        # never None: the trainer's kind, the agent's own check, or the job's final state
        job.failure_kind = outcome.failure_kind or _kind_of_exit(job)
        # the most specific message: the trainer's own, else the scheduler's reason
        job.reason = outcome.message or job.reason
    budget.refresh(c)


def _kind_of_exit(job: JobRecord) -> str:
    """A failure without a readable result: what the trainer's exit code or the job's final
    state says (a full disk leaves no result.json, only its exit code)."""
    if job.exit_code == EXIT_DISK_FULL:
        return "disk_full"
    return job.state.value.lower()


def _remember(
    store: CampaignStore, plan: Plan, tid: str, t: TrialRecord, result: AttemptResult
) -> None:
    """Index a succeeded trial by its identity, so an identical trial is never run again."""
    try:
        spec: TrialSpec = read_contract(store.spec_path(tid), TrialSpec)
    except ContractError:
        return
    t.key = reuse.trial_key(spec, _fingerprint(plan))
    reuse.remember(store.ws, t.key, store.campaign_id, tid, result)


# ---------------------------------------------------------------- diagnose


def diagnose_failures(
    store: CampaignStore, c: Campaign, plan: Plan, sched: Scheduler | None = None
) -> None:
    """Runbook diagnosis and action for every failed trial whose last job has none yet.

    Each diagnosis is journaled once: the event goes first and is skipped when an earlier,
    interrupted run already wrote it; the caller saves the campaign once, after the loop.
    """
    books = plan.runbooks or load_runbooks(store.ws.root / "runbooks")  # the approved ones
    max_attempts = store.ws.settings.guardrails.max_attempts_per_trial
    journaled = {
        (e.get("trial_id"), e.get("job_id")) for e in store.events() if e["event"] == "diagnosis"
    }
    for tid, t in c.trials_of(c.phase or "").items():
        job = t.jobs[-1] if t.jobs else None
        if t.status is not TrialStatus.FAILED or job is None or job.action is not None:
            continue
        failure = Failure(job.failure_kind, job.state.value, job.exit_code, job.reason or "")
        book = diagnose(books, failure)
        config = trial_config(
            plan,
            c,
            TrialDef(tid, t.hypothesis_id, t.seed, t.fidelity, lineage(t.hypothesis_id, t.seed)),
            t.overrides,
        )
        # an attempt the disk was too full for is the infrastructure's, not the hypothesis's
        counted = sum(1 for j in t.jobs if j.failure_kind != "disk_full")
        footprint = (
            _footprint(store, tid, t, job, sched)
            if job.state is JobState.OUT_OF_MEMORY and sched is not None
            else None
        )
        decision = choose_action(
            book,
            failure,
            attempts=counted,
            max_attempts=max_attempts,
            config=config,
            footprint=footprint,
        )
        if decision.action != "give_up" and _costly_search_point(plan, c, t, job):
            decision = Decision(
                decision.runbook_id,
                decision.diagnosis,
                "give_up",
                {},
                f"{decision.detail}; a search point that outruns its time limit is a failed "
                "point of the search (it costs more than its share allows), not retried".lstrip(
                    "; "
                ),
            )
        job.runbook, job.diagnosis, job.action = (
            decision.runbook_id,
            decision.diagnosis,
            decision.action,
        )
        t.diagnosis = decision.diagnosis
        if decision.detail and decision.action == "give_up":
            job.reason = decision.detail  # why it was not retried, the trainer's words first
        change = dict(decision.change)
        if MEM_KEY in change:
            t.mem_gb = float(change.pop(MEM_KEY))
        if change:
            t.overrides = {**t.overrides, **change}
        if (tid, job.job_id) in journaled:
            continue
        store.event(
            "diagnosis",
            trial_id=tid,
            job_id=job.job_id,
            attempt=t.attempts,
            runbook=decision.runbook_id,
            diagnosis=decision.diagnosis,
            action=decision.action,
            change=decision.change,
            detail=decision.detail,
            job_state=job.state.value,
            failure_kind=job.failure_kind,
        )
        crash_point("diagnosis_journaled")  # journaled, campaign not saved yet


def _costly_search_point(plan: Plan, c: Campaign, t: TrialRecord, job: JobRecord) -> bool:
    """A search point's trial (on the search seed: not a confirmation's) that reached its
    time limit: the study records it as failed and asks elsewhere; a retry at twice the limit
    would spend the confirmation's budget on a configuration too costly to confirm."""
    h = c.hypotheses.get(t.hypothesis_id)
    timed_out = job.state is JobState.TIMEOUT or job.failure_kind == "timeout"
    return (
        timed_out
        and h is not None
        and h.source == "search"
        and t.phase == "exploitation"
        and t.seed == plan.engine.validation_seeds[0]
    )


# Optimizer state and gradients a CPU trial adds once it trains: float32 Adam keeps two moments.
TRAIN_STATE_FACTOR = 3


def _footprint(
    store: CampaignStore, tid: str, t: TrialRecord, job: JobRecord, sched: Scheduler
) -> Footprint:
    """What is known of the memory of a trial killed at its limit: the limit, the most one
    task may get, and what its data and model need whatever the batch size."""
    settings = store.ws.settings
    mem = t.mem_gb or (settings.slurm.mem_gb if settings.backend == "slurm" else None)
    caps = [settings.slurm.max_mem_gb] if settings.backend == "slurm" else []
    caps.append(sched.max_mem_gb(trial_resources(settings, 1, gpus_per_trial(settings), mem)))
    known = [c for c in caps if c is not None]
    start: AttemptStart | None = None
    folder = _attempt_for_job(attempt_dirs(store, tid), job.job_id)
    if folder is not None:
        try:
            start = read_contract(folder / "attempt.json", AttemptStart)
        except ContractError:
            start = None
    if start is None or start.ready_memory_mb is None:
        return Footprint(mem, min(known) if known else None, before_ready=True)
    fixed = start.ready_memory_mb
    if start.device == "cpu" and start.n_params:
        fixed += TRAIN_STATE_FACTOR * start.n_params * 4 / 2**20
    return Footprint(mem, min(known) if known else None, fixed_mb=fixed)


def _needs_retry(t: TrialRecord) -> bool:
    return t.status is TrialStatus.FAILED and bool(t.jobs) and t.jobs[-1].action in RETRY_ACTIONS


def _pause_reason(store: CampaignStore, c: Campaign, phase: str) -> str | None:
    trials = c.trials_of(phase)
    for tid, t in trials.items():
        if t.status is TrialStatus.FAILED and t.jobs and t.jobs[-1].action == "pause_campaign":
            detail = f" ({t.jobs[-1].reason})" if t.jobs[-1].reason else ""
            return (
                f"trial {tid}: {t.diagnosis}{detail}; fix the cause, then `rea cancel` and re-plan"
            )
    given_up = [
        t for t in trials.values() if t.status is TrialStatus.FAILED and not _needs_retry(t)
    ]
    limit = store.ws.settings.guardrails.max_failed_fraction
    if trials and len(given_up) / len(trials) > limit:
        return (
            f"{len(given_up)} of {len(trials)} trials of {phase} failed (more than "
            f"{limit:.0%}); see `rea status {c.campaign_id}` and the trial logs"
        )
    return None
