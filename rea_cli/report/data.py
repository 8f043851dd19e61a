"""What the campaign report shows, computed from the campaign record and its plan. Pure.

Every gain is the paired gain of planner.stats (the one home of gain statistics); budget
figures come from the job records as rea_cli.budget reads them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rea_cli import budget
from rea_cli.campaign.model import PHASES, Campaign, Hypothesis, TrialRecord
from rea_cli.campaign.state import TrialStatus
from rea_cli.planner.engine.common import BASELINE, STOP, Results, fidelity_key
from rea_cli.planner.plan import Plan
from rea_cli.planner.stats import PairedGain, paired_gain

SOURCE_LABELS = {
    "baseline": "baseline",
    "research_kb": "research knowledge base",
    "workspace_kb": "workspace knowledge base",
    "insights_history": "insights history",
    "combination": "combination",
    "search": "search",
}


@dataclass(frozen=True)
class GainRow:
    """One hypothesis of one phase: its paired gain over the baseline, and the decision."""

    hypothesis_id: str
    label: str  # hypothesis id, plus the fidelity when not the full one
    gain: PairedGain
    decision: str  # "winner", "not retained", "stopped early", "confirmed", ...
    p_value: float | None = None
    p_adjusted: float | None = None


@dataclass(frozen=True)
class PhaseView:
    name: str
    status: str
    rounds: list[str]  # "1 probe (2 trials)"
    gate_detail: str
    gate_passed: bool | None
    rows: list[GainRow]


@dataclass(frozen=True)
class Curve:
    hypothesis_id: str
    seed: int
    epochs: list[int]
    values: list[float | None]


@dataclass(frozen=True)
class BudgetPoint:
    at: datetime
    spent: float
    reserved: float


@dataclass(frozen=True)
class PhaseCost:
    phase: str
    estimated: float
    worst_case: float
    actual: float


@dataclass(frozen=True)
class FailureGroup:
    diagnosis: str
    count: int
    runbooks: list[str]
    actions: dict[str, int]  # what rea did -> how many times
    example: str  # one failed trial with its message


@dataclass(frozen=True)
class HypothesisView:
    hypothesis_id: str
    rank: int | None
    title: str
    source: str
    strategy: str
    trigger: str
    rationale: str
    reference: str
    score: float | None
    trials: int


@dataclass
class ReportData:
    campaign: Campaign
    plan: Plan | None
    phases: list[PhaseView] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    curve_candidate: str | None = None
    burn: list[BudgetPoint] = field(default_factory=list)
    costs: list[PhaseCost] = field(default_factory=list)
    failures: list[FailureGroup] = field(default_factory=list)
    hypotheses: list[HypothesisView] = field(default_factory=list)


def build(c: Campaign, plan: Plan | None) -> ReportData:
    """Every figure of the report, from the saved campaign and its plan."""
    candidate = c.proposal.candidate if c.proposal else None
    return ReportData(
        campaign=c,
        plan=plan,
        phases=[phase_view(c, p) for p in PHASES if p in c.phases or c.trials_of(p)],
        curves=curves(c, candidate),
        curve_candidate=candidate,
        burn=burn(c),
        costs=costs(c, plan),
        failures=failures(c),
        hypotheses=hypotheses(c, plan),
    )


# ---------------------------------------------------------------- gains


def _succeeded(c: Campaign) -> dict[tuple[str, int, str], TrialRecord]:
    out: dict[tuple[str, int, str], TrialRecord] = {}
    for t in c.trials.values():
        if t.status is TrialStatus.SUCCEEDED and t.metric_value is not None:
            out[(t.hypothesis_id, t.seed, fidelity_key(t.fidelity))] = t
    return out


def _label(hid: str, fidelity: dict[str, Any]) -> str:
    if not fidelity:
        return hid
    stop = fidelity.get(STOP)
    return f"{hid} @ epoch {stop}" if stop else f"{hid} ({fidelity_key(fidelity)})"


def _pairs(
    c: Campaign, res: Results, trials: list[TrialRecord], fidelity: dict[str, Any]
) -> PairedGain:
    """Paired gain of one hypothesis at one fidelity: an early rung is compared with the
    baseline's full run at the same epoch (equal training), as the engine compares them."""
    base, mine, failed = {}, {}, []
    stop = fidelity.get(STOP)
    for t in trials:
        if t.status in (TrialStatus.FAILED, TrialStatus.CANCELLED):
            failed.append(t.seed)
        if stop:
            b, m = (
                res.best_through(BASELINE, t.seed, stop),
                res.best_through(t.hypothesis_id, t.seed, stop),
            )
        else:
            b, m = (
                res.value(BASELINE, t.seed, fidelity),
                res.value(t.hypothesis_id, t.seed, fidelity),
            )
        if b is None:
            continue
        base[t.seed] = b
        if m is not None:
            mine[t.seed] = m
    return paired_gain(base, mine, c.direction, failed_seeds=failed)


def phase_rows(c: Campaign, phase: str) -> list[GainRow]:
    """Paired gain over the baseline of each hypothesis the phase trained (per fidelity)."""
    res = Results(c, c.direction)
    gate = c.phases[phase].gate if phase in c.phases else None
    gains = gate.gains if gate else {}
    groups: dict[tuple[str, str], list[TrialRecord]] = defaultdict(list)
    for t in c.trials_of(phase).values():
        if t.hypothesis_id != BASELINE:
            groups[(t.hypothesis_id, fidelity_key(t.fidelity))].append(t)
    rows = []
    for (hid, _), trials in sorted(groups.items()):
        fidelity = dict(trials[0].fidelity)
        g = gains.get(hid, {}) if not fidelity else {}
        rows.append(
            GainRow(
                hypothesis_id=hid,
                label=_label(hid, fidelity),
                gain=_pairs(c, res, trials, fidelity),
                decision=_decision(c, phase, hid, bool(fidelity), gate.winners if gate else []),
                p_value=g.get("p_value"),
                p_adjusted=g.get("p_adjusted"),
            )
        )
    return rows


def _decision(c: Campaign, phase: str, hid: str, early: bool, winners: list[str]) -> str:
    if early:
        return "early rung"
    if phase == "validation":
        return "winner" if hid in winners else "not retained"
    if phase == "combination":
        gate = c.phases[phase].gate
        return "kept" if gate and gate.best == hid else "not kept"
    if c.proposal and c.proposal.candidate == hid:
        return "proposed" if c.proposal.significant else "candidate, not confirmed"
    return "search point"


def phase_view(c: Campaign, phase: str) -> PhaseView:
    rec = c.phases.get(phase)
    rounds = []
    for r in rec.rounds if rec else []:
        rounds.append(f"round {r.round}: {r.kind or 'trials'} ({len(r.trial_ids)} trial(s))")
    return PhaseView(
        name=phase,
        status=str(rec.status) if rec else "pending",
        rounds=rounds,
        gate_detail=rec.gate.detail if rec and rec.gate else "",
        gate_passed=rec.gate.passed if rec and rec.gate else None,
        rows=phase_rows(c, phase),
    )


# ---------------------------------------------------------------- learning curves


def curves(c: Campaign, candidate: str | None) -> list[Curve]:
    """Full-fidelity curves of the baseline and the candidate on the seeds both ran (the
    confirmation's fresh seeds when there was one)."""
    full = {k: t for k, t in _succeeded(c).items() if k[2] == fidelity_key({})}
    wanted = [BASELINE] + ([candidate] if candidate and candidate != BASELINE else [])
    seeds = {s for h, s, _ in full if h == BASELINE}
    if len(wanted) == 2:
        seeds &= {s for h, s, _ in full if h == wanted[1]}
    out = []
    for hid in wanted:
        for seed in sorted(seeds):
            t = full.get((hid, seed, fidelity_key({})))
            if t is None or not t.curve:
                continue
            out.append(Curve(hid, seed, [p.epoch + 1 for p in t.curve], [p.value for p in t.curve]))
    return out


# ---------------------------------------------------------------- budget


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def burn(c: Campaign) -> list[BudgetPoint]:
    """Spent and reserved GPU-hours over time, at every submission, start and end of a job.

    Spent grows linearly while a job runs (its measured GPU-seconds spread over its run);
    reserved is the worst case of every job submitted and not ended yet.
    """
    submitted: dict[tuple[str, int], datetime] = {}
    jobs = []
    for phase, rec in c.phases.items():
        for r in rec.rounds:
            at = _time(r.submitted_at)
            if at is not None:
                submitted[(phase, r.round)] = at
    for t in c.trials.values():
        for j in t.jobs:
            sub = submitted.get((t.phase, j.round))
            start, end = _time(j.started_at), _time(j.ended_at)
            sub = sub or start
            if sub is None:
                continue
            jobs.append((sub, start, end, j))
    if not jobs:
        return []
    times = sorted({x for sub, start, end, _ in jobs for x in (sub, start, end) if x is not None})
    points = []
    for at in times:
        spent = reserved = 0.0
        for sub, start, end, j in jobs:
            if at < sub:
                continue
            if end is None or at < end:
                reserved += budget.reservation_hours(1, j.time_limit_min, j.gpus)
            if start is not None and end is not None and at >= start:
                run = (end - start).total_seconds()
                frac = 1.0 if run <= 0 else min(1.0, (at - start).total_seconds() / run)
                spent += j.gpu_seconds * frac / 3600.0
        points.append(BudgetPoint(at, spent, reserved))
    return points


def costs(c: Campaign, plan: Plan | None) -> list[PhaseCost]:
    """Per phase: the plan's estimate and worst case against what its jobs measured."""
    actual: dict[str, float] = defaultdict(float)
    for t in c.trials.values():
        actual[t.phase] += sum(j.gpu_seconds for j in t.jobs) / 3600.0
    out = []
    for phase in PHASES:
        p = plan.phase(phase) if plan else None
        out.append(
            PhaseCost(
                phase=phase,
                estimated=p.estimated_gpu_hours if p else 0.0,
                worst_case=p.reserved_gpu_hours if p else 0.0,
                actual=actual.get(phase, 0.0),
            )
        )
    return out


# ---------------------------------------------------------------- failures


def failures(c: Campaign) -> list[FailureGroup]:
    """Every failed job, grouped by the runbooks' diagnosis, with what rea did about it."""
    groups: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for tid, t in sorted(c.trials.items()):
        for j in t.jobs:
            if not (j.failure_kind or j.diagnosis):
                continue
            groups[j.diagnosis or j.failure_kind or j.state.value].append((tid, j))
    out = []
    for diagnosis, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        actions: dict[str, int] = defaultdict(int)
        for _, j in items:
            actions[j.action or "none yet"] += 1
        tid, j = items[0]
        message = j.reason or j.failure_kind or j.state.value
        out.append(
            FailureGroup(
                diagnosis=diagnosis,
                count=len(items),
                runbooks=sorted({j.runbook for _, j in items if j.runbook}),
                actions=dict(actions),
                example=f"{tid} (job {j.job_id}): {message}",
            )
        )
    return out


# ---------------------------------------------------------------- hypotheses


def hypotheses(c: Campaign, plan: Plan | None) -> list[HypothesisView]:
    """Hypotheses that trained (or were ranked first), in the plan's ranked order, then the
    ones the campaign made itself (combinations, search points)."""
    ranked = (
        {r.hypothesis_id: (i, r.numbers.score) for i, r in enumerate(plan.ranking, 1)}
        if (plan)
        else {}
    )
    trained: dict[str, int] = defaultdict(int)
    for t in c.trials.values():
        trained[t.hypothesis_id] += 1
    shown = [h for h in c.hypotheses if trained.get(h) or h == BASELINE]

    def order(hid: str) -> tuple[int, int, str]:
        if hid == BASELINE:
            return (0, 0, hid)
        if hid in ranked:
            return (1, ranked[hid][0], hid)
        return (2, 0, hid)

    return [
        _view(hid, c.hypotheses[hid], ranked.get(hid), trained.get(hid, 0))
        for hid in sorted(shown, key=order)
    ]


def _view(hid: str, h: Hypothesis, rank: tuple[int, float] | None, trials: int) -> HypothesisView:
    return HypothesisView(
        hypothesis_id=hid,
        rank=rank[0] if rank else None,
        title=h.title,
        source=SOURCE_LABELS.get(h.source, h.source),
        strategy=h.strategy or "",
        trigger=h.trigger,
        rationale=h.rationale,
        reference=h.reference,
        score=rank[1] if rank else None,
        trials=trials,
    )
