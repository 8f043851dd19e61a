"""Gates between phases, the trials of each phase, and the proposal. Pure functions.

Given the plan and the campaign's measured trial results, decide what the next phase runs:
validation runs the planned hypotheses; combination runs combinations of the validated winners;
exploitation runs the best configuration at full fidelity with more seeds; the proposal compares
it with the baseline, paired by seed, with a confidence interval.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from rea_cli.campaign.model import PHASES, Campaign, Gate, Hypothesis, Proposal
from rea_cli.campaign.state import TrialStatus
from rea_cli.planner.plan import BASELINE, Plan
from rea_cli.planner.stats import PairedGain, paired_gain


@dataclass(frozen=True)
class TrialDef:
    trial_id: str
    hypothesis_id: str
    seed: int
    fidelity: dict[str, Any]


@dataclass
class PhaseDecision:
    """What to run in `phase` (empty trials = skip it), and the gate that led there."""

    phase: str
    trials: list[TrialDef]
    new_hypotheses: dict[str, Hypothesis] = field(default_factory=dict)
    gate: Gate | None = None


def trial_id(phase: str, hypothesis_id: str, seed: int) -> str:
    return f"{phase}-{hypothesis_id}-s{seed}"


def phase_results(campaign: Campaign, phase: str) -> dict[str, dict[int, float]]:
    """hypothesis -> seed -> validation metric, for succeeded trials of `phase`."""
    out: dict[str, dict[int, float]] = {}
    for t in campaign.trials_of(phase).values():
        if t.status is TrialStatus.SUCCEEDED and t.metric_value is not None:
            out.setdefault(t.hypothesis_id, {})[t.seed] = t.metric_value
    return out


def gains(campaign: Campaign, phase: str, direction: str) -> dict[str, PairedGain]:
    res = phase_results(campaign, phase)
    if phase == "combination":
        # combination runs at validation's fidelity and seeds: the baseline and the single
        # hypotheses measured there are reused, not trained again
        for h, by_seed in phase_results(campaign, "validation").items():
            res[h] = {**by_seed, **res.get(h, {})}
    base = res.get(BASELINE, {})
    return {h: paired_gain(base, r, direction) for h, r in res.items() if h != BASELINE}


def _trials(
    phase: str, hyps: list[str], seeds: list[int], fidelity: dict[str, Any]
) -> list[TrialDef]:
    return [
        TrialDef(trial_id(phase, h, s), h, s, fidelity) for h in [BASELINE, *hyps] for s in seeds
    ]


def first_phase(plan: Plan) -> PhaseDecision:
    v = plan.phase("validation")
    return PhaseDecision("validation", _trials("validation", v.hypotheses, v.seeds, v.fidelity))


def next_phase(plan: Plan, campaign: Campaign, ended: str) -> PhaseDecision | None:
    """The phase after `ended` (None: no phase left, time for the proposal)."""
    if ended == "validation":
        return _combination(plan, campaign)
    if ended == "combination":
        return _exploitation(plan, campaign, _best_of_combination(plan, campaign))
    return None


def _validation_winners(plan: Plan, campaign: Campaign) -> tuple[list[str], Gate]:
    v = plan.phase("validation")
    g = gains(campaign, "validation", plan.direction)
    full = len(v.seeds)
    eligible = {
        h: pg
        for h, pg in g.items()
        if pg.n == full and pg.mean is not None and pg.mean > v.gate["min_gain"]
    }
    ranked = sorted(eligible, key=lambda h: (-(eligible[h].mean or 0.0), h))
    winners = ranked[: v.gate["top_k"]]
    detail = {h: {"gain": pg.mean, "n": pg.n} for h, pg in sorted(g.items())}
    return winners, Gate(winners=winners, gains=detail)


def _merge(plan: Plan, ids: tuple[str, ...]) -> dict[str, Any] | None:
    merged: dict[str, Any] = {}
    for h in ids:
        for key, value in plan.hypotheses[h].delta.items():
            if key in merged and merged[key] != value:
                return None  # conflicting changes cannot be combined
            merged[key] = value
    return merged


def _combination(plan: Plan, campaign: Campaign) -> PhaseDecision:
    winners, gate = _validation_winners(plan, campaign)
    c = plan.phase("combination")
    if not winners:
        gate = gate.model_copy(
            update={"passed": False, "detail": "no hypothesis beat the baseline in validation"}
        )
        return PhaseDecision("combination", [], gate=gate)
    if len(winners) == 1:
        gate = gate.model_copy(
            update={
                "passed": True,
                "detail": f"one winner ({winners[0]}): nothing to combine",
                "best": winners[0],
            }
        )
        return PhaseDecision("combination", [], gate=gate)
    new: dict[str, Hypothesis] = {}
    for size in range(2, len(winners) + 1):
        for ids in itertools.combinations(winners, size):
            delta = _merge(plan, ids)
            if delta is None:
                continue
            hid = "+".join(ids)
            new[hid] = Hypothesis(
                title=" + ".join(plan.hypotheses[h].title for h in ids),
                rationale="Combination of hypotheses that each beat the baseline in validation.",
                source="combination",
                delta=delta,
                parents=list(ids),
                model_family=plan.model_family,
            )
    gate = gate.model_copy(
        update={
            "passed": True,
            "detail": f"{len(winners)} winners: {', '.join(winners)}",
            "best": winners[0],
        }
    )
    trials = [
        TrialDef(trial_id("combination", h, s), h, s, c.fidelity) for h in new for s in c.seeds
    ]
    return PhaseDecision("combination", trials, new, gate)


def _best_of_combination(plan: Plan, campaign: Campaign) -> str | None:
    rec = campaign.phases.get("combination")
    prior = rec.gate if rec and rec.gate else None
    if prior is None or not prior.passed:
        return None
    if not campaign.trials_of("combination"):
        return prior.best
    g = gains(campaign, "combination", plan.direction)
    winners = set(prior.winners)
    scored = {
        h: pg.mean
        for h, pg in g.items()
        if pg.mean is not None
        and (
            h in winners
            or (
                campaign.hypotheses.get(h, None) is not None
                and campaign.hypotheses[h].source == "combination"
            )
        )
    }
    if not scored:
        return prior.best
    return max(sorted(scored), key=lambda h: scored[h] or 0.0)


def _exploitation(plan: Plan, campaign: Campaign, best: str | None) -> PhaseDecision:
    e = plan.phase("exploitation")
    if best is None:
        return PhaseDecision("exploitation", [], gate=Gate(passed=False, detail="no candidate"))
    gate = Gate(passed=True, best=best, detail=f"exploiting {best}")
    return PhaseDecision(
        "exploitation", _trials("exploitation", [best], e.seeds, e.fidelity), gate=gate
    )


def make_proposal(plan: Plan, campaign: Campaign, created_at: str) -> Proposal:
    """Best configuration with its gain over the baseline (exploitation phase, paired seeds)."""
    expl = campaign.phases.get("exploitation")
    best = expl.gate.best if expl and expl.gate else None
    if best is None or not campaign.trials_of("exploitation"):
        reason = _why_no_candidate(campaign)
        return Proposal(
            hypothesis_id=BASELINE,
            delta={},
            metric=plan.metric,
            direction=plan.direction,
            baseline_mean=None,
            candidate_mean=None,
            gain=None,
            ci_low=None,
            ci_high=None,
            n=0,
            summary=f"keep the baseline: {reason}",
            created_at=created_at,
        )
    res = phase_results(campaign, "exploitation")
    pg = paired_gain(res.get(BASELINE, {}), res.get(best, {}), plan.direction)
    test_base = _test_values(campaign, BASELINE)
    test_best = _test_values(campaign, best)
    tg = paired_gain(test_base, test_best, plan.direction)
    hyp = campaign.hypotheses.get(best) or plan.hypotheses[best]
    verdict = "significant" if pg.significant else "not significant"
    summary = (
        f"{hyp.title}: {plan.metric} gain {_fmt(pg.mean)} over the baseline "
        f"(95% CI {_fmt(pg.ci_low)} .. {_fmt(pg.ci_high)}, n={pg.n} seeds, {verdict})"
    )
    return Proposal(
        hypothesis_id=best,
        delta=hyp.delta,
        metric=plan.metric,
        direction=plan.direction,
        baseline_mean=pg.baseline_mean,
        candidate_mean=pg.candidate_mean,
        gain=pg.mean,
        ci_low=pg.ci_low,
        ci_high=pg.ci_high,
        n=pg.n,
        test_gain=tg.mean,
        summary=summary,
        created_at=created_at,
    )


def _test_values(campaign: Campaign, hypothesis_id: str) -> dict[int, float]:
    return {
        t.seed: t.test_value
        for t in campaign.trials_of("exploitation").values()
        if t.hypothesis_id == hypothesis_id
        and t.status is TrialStatus.SUCCEEDED
        and t.test_value is not None
    }


def _why_no_candidate(campaign: Campaign) -> str:
    for phase in PHASES:
        rec = campaign.phases.get(phase)
        if rec and rec.gate and not rec.gate.passed:
            return rec.gate.detail or "a gate did not pass"
    return "no candidate configuration"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.4f}"
