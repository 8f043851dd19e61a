"""Combination: greedy forward selection over the validation winners. Pure.

Start from the best winner (the incumbent). Each step tries the incumbent plus each remaining
compatible winner on the validation seeds at full fidelity; the best addition is kept if its
mean paired gain over the incumbent is positive, every seed ran and none failed, and the next
step starts from it. The search stops when no addition helps, no winner is left, or after
`combination_max_steps` steps. Not every subset: n winners cost at most n(n-1)/2 trials per
seed, usually far fewer. Each step records the interaction of the pair it tried: the gain of the
combination minus the sum of the parts' gains.
"""

from __future__ import annotations

from typing import Any

from rea_cli.campaign.model import Gate, Hypothesis
from rea_cli.planner.engine.common import BASELINE, Results, Step, TrialDef, trial_def
from rea_cli.planner.plan import Plan
from rea_cli.planner.stats import paired_gain

PHASE = "combination"


def merged(parts: list[str], hypotheses: dict[str, Hypothesis]) -> dict[str, Any] | None:
    """The union of the parts' deltas; None when two of them set one key differently."""
    delta: dict[str, Any] = {}
    for h in parts:
        for key, value in hypotheses[h].delta.items():
            if key in delta and delta[key] != value:
                return None
            delta[key] = value
    return delta


def combined(parts: list[str], hypotheses: dict[str, Hypothesis], family: str) -> Hypothesis | None:
    delta = merged(parts, hypotheses)
    if delta is None:
        return None
    return Hypothesis(
        title=" + ".join(hypotheses[h].title for h in parts),
        rationale="Greedy forward selection over the hypotheses that passed validation.",
        source="combination",
        delta=delta,
        parents=list(parts),
        model_family=family,
        cost=max(hypotheses[h].cost for h in parts),
    )


def name(parts: list[str]) -> str:
    return "+".join(parts)


def _values(plan: Plan, res: Results, hid: str) -> dict[int, float]:
    return {s: v for s in plan.engine.validation_seeds if (v := res.value(hid, s)) is not None}


def next_step(
    plan: Plan, res: Results, winners: list[str], hypotheses: dict[str, Hypothesis]
) -> tuple[Step | None, str | None, Gate]:
    """(the step to run or None when done; the incumbent so far; the gate as it stands)."""
    seeds = plan.engine.validation_seeds
    if not winners:
        return None, None, Gate(passed=False, detail="no winner to combine", skipped=True)
    # two levels of one strategy set the same keys: keep the best level of each strategy
    seen: set[str] = set()
    kept = []
    for w in winners:  # best first
        strategy = hypotheses[w].strategy or w
        if strategy not in seen:
            seen.add(strategy)
            kept.append(w)
    winners = kept
    incumbent = [winners[0]]
    remaining = list(winners[1:])
    steps: dict[str, dict[str, Any]] = {}
    new: dict[str, Hypothesis] = {}
    for step in range(plan.engine.combination_max_steps):
        options = {}
        for w in remaining:
            parts = [*incumbent, w]
            h = combined(parts, {**hypotheses, **new}, plan.model_family)
            if h is not None:
                options[name(parts)] = (w, h)
        if not options:
            break
        new.update({hid: h for hid, (_, h) in options.items()})
        trials: list[TrialDef] = [
            trial_def(PHASE, hid, s, cost=h.cost) for hid, (_, h) in options.items() for s in seeds
        ]
        if not res.all_finished(trials):
            inc = name(incumbent)
            note = (
                f"step {step + 1}: {inc} plus each of {', '.join(w for w, _ in options.values())}"
            )
            gate = Gate(passed=True, detail=note, best=inc, winners=winners, gains=steps)
            return Step(PHASE, "step", trials, note, new_hypotheses=new), inc, gate
        inc_values = _values(plan, res, name(incumbent))
        base = _values(plan, res, BASELINE)
        best, best_gain = None, 0.0
        for hid, (w, _) in options.items():
            mine = _values(plan, res, hid)
            failed = [s for s in seeds if res.failed(hid, s)]
            pg = paired_gain(inc_values, mine, plan.direction, failed_seeds=failed)
            interaction = _interaction(plan, res, base, hid, [name(incumbent), w])
            steps[hid] = {
                "gain_over_incumbent": pg.mean,
                "n": pg.n,
                "failed_seeds": failed,
                "interaction": interaction,
            }
            if failed or pg.mean is None or pg.n < len(seeds):
                continue
            diffs_positive = pg.mean > 0 and (pg.ci_low is None or pg.mean > 0)
            if diffs_positive and pg.mean > best_gain:
                best, best_gain = hid, pg.mean
        if best is None:
            break
        incumbent = [*incumbent, options[best][0]]
        remaining.remove(options[best][0])
        if not remaining:
            break
    inc = name(incumbent)
    detail = f"incumbent {inc}" + (" (no addition helped)" if len(incumbent) == 1 else "")
    return None, inc, Gate(passed=True, detail=detail, best=inc, winners=winners, gains=steps)


def _interaction(
    plan: Plan, res: Results, base: dict[int, float], combo: str, parts: list[str]
) -> float | None:
    """Gain of the combination over the baseline minus the sum of its parts' gains."""
    total = paired_gain(base, _values(plan, res, combo), plan.direction).mean
    part_gains = [paired_gain(base, _values(plan, res, p), plan.direction).mean for p in parts]
    if total is None or any(g is None for g in part_gains):
        return None
    return total - sum(g for g in part_gains if g is not None)
