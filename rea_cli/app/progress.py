"""What `rea watch` and `rea launch --follow` show: progress of a campaign, read-only.

Per phase in run order: trials done / running / pending / failed; the best paired gain over
the baseline so far; the budget with spent measured live (the scheduler's elapsed time of
running jobs, so it moves while a phase runs, not only at wake-ups); the elapsed time; and an
ETA of the current round from the cost model (the expected time of its trials left, over the
trials that run at once). The engine decides later rounds from results, so the campaign's end
has no honest ETA; its bound is the budget left.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from rea_cli import budget
from rea_cli.campaign.model import PHASES, Campaign
from rea_cli.campaign.state import CampaignState, TrialStatus
from rea_cli.campaign.store import CampaignStore
from rea_cli.executor.backends import make_scheduler
from rea_cli.executor.scheduler import JobInfo, JobState
from rea_cli.planner.plan import Plan
from rea_cli.workspace import Workspace


class PhaseProgress(BaseModel):
    phase: str
    status: str
    done: int = 0  # succeeded (reused ones included)
    running: int = 0
    pending: int = 0
    failed: int = 0  # failed or cancelled


class BestGain(BaseModel):
    hypothesis_id: str
    phase: str
    gain: float
    ci_low: float | None
    ci_high: float | None
    n: int


class Progress(BaseModel):
    campaign_id: str
    state: str
    phase: str | None
    phases: list[PhaseProgress] = Field(default_factory=list)
    best: BestGain | None = None
    spent_gpu_hours: float = 0.0
    reserved_gpu_hours: float = 0.0
    approved_gpu_hours: float = 0.0
    elapsed_s: float | None = None
    round_eta_s: float | None = None
    proposal: str | None = None
    pause_reason: str | None = None


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def best_gain(c: Campaign) -> BestGain | None:
    """The largest paired gain over the baseline with an interval (two pairs or more)."""
    from rea_cli.report.data import phase_rows

    best = None
    for phase in PHASES:
        if phase not in c.phases:
            continue
        for r in phase_rows(c, phase):
            g = r.gain
            if g.mean is None or g.n < 2 or r.label != r.hypothesis_id:
                continue  # early rungs are not comparable with full trials
            if best is None or g.mean > best.gain:
                best = BestGain(
                    hypothesis_id=r.hypothesis_id,
                    phase=phase,
                    gain=g.mean,
                    ci_low=g.ci_low,
                    ci_high=g.ci_high,
                    n=g.n,
                )
    return best


def compute(
    c: Campaign,
    plan: Plan | None,
    infos: dict[str, JobInfo],
    now: datetime,
    parallelism: int,
) -> Progress:
    """Progress of a campaign given the scheduler's view of its open jobs. Pure."""
    phases = []
    for name in PHASES:
        rec = c.phases.get(name)
        trials = c.trials_of(name)
        if rec is None and not trials:
            continue
        p = PhaseProgress(phase=name, status=str(rec.status) if rec else "pending")
        for t in trials.values():
            info = infos.get(t.jobs[-1].job_id) if t.jobs else None
            if t.status is TrialStatus.SUCCEEDED:
                p.done += 1
            elif t.status in (TrialStatus.FAILED, TrialStatus.CANCELLED):
                p.failed += 1
            elif info is not None and info.state.has_ended:
                if info.state is JobState.COMPLETED:
                    p.done += 1
                else:
                    p.failed += 1
            elif info is not None and info.state is JobState.RUNNING:
                p.running += 1
            else:
                p.pending += 1
        phases.append(p)
    rounds = [r for rec in c.phases.values() for r in rec.rounds]
    starts = [at for r in rounds if (at := _time(r.submitted_at)) is not None]
    running = c.state is CampaignState.RUNNING
    spent = budget.measured_spend_hours(c, infos, now) if running else c.budget.spent_gpu_hours
    return Progress(
        campaign_id=c.campaign_id,
        state=c.state.value,
        phase=c.phase,
        phases=phases,
        best=best_gain(c),
        spent_gpu_hours=spent,
        reserved_gpu_hours=budget.reserved_hours(c) if running else 0.0,
        approved_gpu_hours=c.budget.approved_gpu_hours,
        elapsed_s=(now - min(starts)).total_seconds() if starts else None,
        round_eta_s=round_eta(c, plan, infos, now, parallelism) if running else None,
        proposal=c.proposal.summary if c.proposal else None,
        pause_reason=c.pause_reason,
    )


def round_eta(
    c: Campaign, plan: Plan | None, infos: dict[str, JobInfo], now: datetime, parallelism: int
) -> float | None:
    """Seconds until the current round's trials are done, from the cost model: each open
    trial's expected time (a full baseline trial's, x its hypothesis's cost), less what a
    running one has run, spread over the trials that run at once."""
    rnd = c.current_round()
    if plan is None or rnd is None:
        return None
    per_trial_s = plan.engine.te_gpu_hours * 3600.0 / budget.devices(rnd.gpus)
    left = []
    for tid in rnd.trial_ids:
        t = c.trials.get(tid)
        if t is None or not t.jobs or t.status is not TrialStatus.SUBMITTED:
            continue
        info = infos.get(t.jobs[-1].job_id)
        if info is not None and info.state.has_ended:
            continue
        h = c.hypotheses.get(t.hypothesis_id)
        expected = per_trial_s * (h.cost if h else 1.0)
        ran = 0.0
        if info is not None and info.started_at is not None:
            ran = info.elapsed_s or (now - info.started_at).total_seconds()
        left.append(max(0.0, expected - ran))
    if not left:
        return 0.0
    # at least the longest trial; at best every slot busy until the end
    return max(max(left), sum(left) / max(1, parallelism))


def live_progress(ws: Workspace, campaign_id: str, now: datetime | None = None) -> Progress:
    """The saved campaign with its open jobs as the scheduler sees them now."""
    store = CampaignStore(ws, campaign_id)
    c = store.load()
    plan = None
    if store.plan_path.exists():
        try:
            plan = Plan.model_validate_json(store.read_plan_bytes())
        except ValueError:
            plan = None  # progress is shown without an ETA
    infos: dict[str, JobInfo] = {}
    if c.state is CampaignState.RUNNING:
        open_ids = [t.jobs[-1].job_id for t in c.trials.values() if t.last_job_open]
        if open_ids:
            infos = make_scheduler(ws).states(open_ids)
    s = ws.settings
    parallelism = s.local.max_parallel if s.backend == "local" else s.slurm.array_parallelism
    return compute(c, plan, infos, now or datetime.now(UTC), parallelism)
