"""Validation: the baseline probe, successive-halving rungs, and the corrected gate. Pure.

1. probe: the baseline on every validation seed at full fidelity. Its curve is the training
   profile (rules on `training.*` are evaluated then, and the pool re-ranked) and the reference
   every rung compares with, epoch for epoch (comparing at equal training, so a change that
   pays off late is not judged on a short run it was never meant for).
2. rungs: the screened hypotheses stop at the first rung's epoch on the screening seed(s); the
   best 1/eta (by mean gain over the baseline's curve at the same epoch) continue from their
   checkpoints to the next rung, the last rung being the full horizon on every validation seed.
   A hypothesis that only lengthens training is identical to the baseline on the early rungs:
   it skips them and goes straight to the full horizon.
3. gate: one-sided paired t-tests at full fidelity against the baseline, corrected over EVERY
   hypothesis screened (those stopped early count with p = 1); a hypothesis with a failed seed
   (diverged) fails. Winners pass the correction with a positive mean gain.
"""

from __future__ import annotations

import math
from typing import Any

from rea_cli.campaign.model import Campaign, Gate, Hypothesis
from rea_cli.planner.engine.common import BASELINE, STOP, Results, Step, TrialDef, trial_def
from rea_cli.planner.plan import Plan
from rea_cli.planner.stats import correct, paired_gain

PHASE = "validation"


def probe_trials(plan: Plan) -> list[TrialDef]:
    return [trial_def(PHASE, BASELINE, s, priority=10.0) for s in plan.engine.validation_seeds]


def horizon_only(h: Hypothesis) -> bool:
    """Only the training length (and its early stopping) changes: equal to the baseline on
    every epoch the baseline runs, so early rungs cannot tell them apart."""
    return bool(h.delta) and set(h.delta) <= {"train.epochs", "train.early_stopping_patience"}


def rung_trials(
    plan: Plan, screened: list[str], hypotheses: dict[str, Hypothesis], rung: int
) -> list[TrialDef]:
    """The trials of early rung `rung` (0-based) for the hypotheses still in."""
    stop = plan.engine.rung_epochs[rung]
    seeds = plan.engine.validation_seeds[: plan.engine.screen_seeds]
    return [
        trial_def(
            PHASE,
            h,
            s,
            {STOP: stop},
            cost=hypotheses[h].cost * stop / _epochs(plan),
            priority=-i,
        )
        for i, h in enumerate(screened)
        for s in seeds
        if not horizon_only(hypotheses[h])
    ]


def final_trials(
    plan: Plan, promoted: list[str], hypotheses: dict[str, Hypothesis]
) -> list[TrialDef]:
    return [
        trial_def(PHASE, h, s, cost=hypotheses[h].cost, priority=-i)
        for i, h in enumerate(promoted)
        for s in plan.engine.validation_seeds
    ]


def _epochs(plan: Plan) -> int:
    return int(plan.baseline["train"]["epochs"])


def rung_gains(plan: Plan, res: Results, hids: list[str], stop: int) -> dict[str, float | None]:
    """Mean gain of each hypothesis over the baseline's curve at the same epoch (None: a seed
    failed or is missing — it drops out)."""
    seeds = plan.engine.validation_seeds[: plan.engine.screen_seeds]
    out: dict[str, float | None] = {}
    for h in hids:
        diffs: list[float] = []
        for s in seeds:
            mine = res.value(h, s, {STOP: stop})
            base = res.best_through(BASELINE, s, stop)
            if mine is None or base is None:
                diffs = []
                break
            diffs.append(res.oriented(mine) - res.oriented(base))
        out[h] = sum(diffs) / len(diffs) if diffs else None
    return out


def promote(plan: Plan, gains: dict[str, float | None], keep_at_least: int = 1) -> list[str]:
    """The best ceil(n / eta) hypotheses of a rung, by mean gain (failures never promoted)."""
    alive = sorted((h for h, g in gains.items() if g is not None), key=lambda h: -(gains[h] or 0))
    n = max(keep_at_least, math.ceil(len(gains) / plan.engine.eta))
    return alive[:n]


def next_step(
    plan: Plan, c: Campaign, res: Results, screened: list[str], hypotheses: dict[str, Hypothesis]
) -> tuple[Step | None, list[str]]:
    """(the step to run, or None when validation is complete; the hypotheses at full fidelity)."""
    probe = probe_trials(plan)
    if not res.all_finished(probe):
        return Step(
            PHASE, "probe", probe, "the baseline at full fidelity: its curve is the reference"
        ), []
    alive = list(screened)
    for rung, stop in enumerate(plan.engine.rung_epochs):
        early = [h for h in alive if not horizon_only(hypotheses[h])]
        trials = rung_trials(plan, early, hypotheses, rung)
        if not res.all_finished(trials):
            note = f"rung {rung + 1}: {len(early)} hypotheses stopped at epoch {stop}"
            return Step(PHASE, "rung", trials, note), []
        gains = rung_gains(plan, res, early, stop)
        alive = promote(plan, gains) + [h for h in alive if horizon_only(hypotheses[h])]
    final = final_trials(plan, alive, hypotheses)
    if not res.all_finished(final):
        note = f"full horizon: {', '.join(alive)} on {len(plan.engine.validation_seeds)} seeds"
        return Step(PHASE, "final", final, note), alive
    return None, alive


def gate(plan: Plan, res: Results, screened: list[str], finalists: list[str]) -> Gate:
    """Winners: finalists whose paired gain passes the correction over every screened one."""
    seeds = plan.engine.validation_seeds
    base = {s: v for s in seeds if (v := res.value(BASELINE, s)) is not None}
    p_values: dict[str, float] = {}
    gains: dict[str, dict[str, Any]] = {}
    for h in screened:
        if h not in finalists:
            p_values[h] = 1.0  # stopped at an early rung: tested, not retained
            gains[h] = {"stopped_early": True}
            continue
        mine = {s: v for s in seeds if (v := res.value(h, s)) is not None}
        failed = [s for s in seeds if res.failed(h, s)]
        pg = paired_gain(base, mine, plan.direction, failed_seeds=failed)
        p = 1.0 if failed or pg.p_value is None else pg.p_value
        p_values[h] = p
        gains[h] = {
            "gain": pg.mean,
            "ci_low": pg.ci_low,
            "ci_high": pg.ci_high,
            "n": pg.n,
            "p_value": p,
            "failed_seeds": failed,
            "relative": pg.relative(),
        }
    tests = correct(plan.engine.correction, p_values, plan.engine.significance) if p_values else {}
    winners = []
    for h, (p_adj, rejected) in tests.items():
        gains[h]["p_adjusted"] = p_adj
        mean = gains[h].get("gain")
        if rejected and mean is not None and mean > 0 and h in finalists:
            winners.append(h)
    winners.sort(key=lambda h: -(gains[h]["gain"] or 0.0))
    method = "Benjamini-Hochberg" if plan.engine.correction == "bh" else "Holm"
    if winners:
        detail = (
            f"{len(winners)} of {len(screened)} hypotheses pass ({method} at "
            f"{plan.engine.significance:g}): {', '.join(winners)}"
        )
    else:
        detail = (
            f"none of {len(screened)} hypotheses passes {method} at {plan.engine.significance:g}"
        )
    return Gate(
        passed=bool(winners),
        detail=detail,
        winners=winners,
        best=winners[0] if winners else None,
        gains=gains,
    )
