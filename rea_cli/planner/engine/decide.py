"""next_step: the phases chained, within the budget. Pure (the search port aside)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from rea_cli.campaign.model import Campaign, Gate, Hypothesis, Proposal
from rea_cli.campaign.state import TrialStatus
from rea_cli.planner.engine import combination, exploitation, validation
from rea_cli.planner.engine.common import BASELINE, Finish, Results, Step, TrialDef, trial_def
from rea_cli.planner.engine.search import SearchPort
from rea_cli.planner.plan import Plan, RankedHypothesis, confirmation_cost, trial_te
from rea_cli.planner.profile import TrainingProfile, training_profile
from rea_cli.planner.ranking import rank_numbers


def full_run_seconds(c: Campaign, hid: str) -> list[float]:
    """GPU seconds of each succeeded full-fidelity trial of a hypothesis, over all its jobs: a
    trial retried after a timeout continued its checkpoint, so its last job alone ran only the
    epochs the first one did not finish (an underestimate that prices a confirmation too low)."""
    out = []
    for t in c.trials.values():
        if t.hypothesis_id == hid and not t.fidelity and t.status is TrialStatus.SUCCEEDED:
            seconds = sum(j.gpu_seconds for j in t.jobs)
            if seconds > 0:
                out.append(seconds)
    return out


def te_gpu_hours(plan: Plan, c: Campaign) -> float:
    """GPU-hours of one full baseline trial: measured on the probe when it ran, else planned."""
    seconds = full_run_seconds(c, BASELINE)
    if seconds:
        return sum(seconds) / len(seconds) / 3600.0
    return plan.engine.te_gpu_hours


def remaining_te(plan: Plan, c: Campaign) -> float:
    b = c.budget
    left = b.approved_gpu_hours - b.spent_gpu_hours - b.reserved_gpu_hours
    return max(0.0, left) / max(te_gpu_hours(plan, c), 1e-12)


def measured_te(plan: Plan, c: Campaign, hid: str, nominal: float) -> float:
    """A hypothesis's cost in trial-equivalents as measured: the GPU time of its median
    succeeded full-fidelity run over one baseline trial's, never below its nominal cost (which
    prices only the training length; an architecture or feature change costs more per
    sample)."""
    te_s = te_gpu_hours(plan, c) * 3600.0
    seconds = full_run_seconds(c, hid)
    if not seconds or te_s <= 0:
        return nominal
    # the median run: one run slowed by a busy node must not price every later one
    return max(nominal, statistics.median(seconds) / te_s)


# What the budget must hold, in trial-equivalents, to submit these trials at once: their
# time limits, overrun included, as the budget guard reserves them (the application layer
# measures it with the scheduler's limits; None: one trial's expected cost is assumed).
WorstCase = Callable[[Sequence[TrialDef]], float]


def confirmation_te(
    plan: Plan,
    c: Campaign,
    res: Results,
    candidate: str,
    hyps: dict[str, Hypothesis],
    worst_te: WorstCase | None = None,
) -> float:
    """TE of the candidate's confirmation trials not submitted yet (those submitted are in
    the budget's reservation already), each at its measured cost, plus the headroom its last
    trial needs: the guard reserves a round at its worst case (time limits), not its
    expectation, so without it the last trial never fits and the confirmation is never done."""
    step = exploitation.confirmation_step(plan, res, candidate, hyps)
    if step is None:
        return 0.0
    todo = [t for t in step.trials if res.get(t.hypothesis_id, t.seed, t.fidelity) is None]
    if not todo:
        return 0.0
    costs = [measured_te(plan, c, t.hypothesis_id, t.cost) for t in todo]
    if worst_te is None:
        return sum(costs) + max(costs)
    # the last trial may go alone (the budget's reservation fits fewer trials near its end):
    # the candidate's or the baseline's, whichever reserves more beyond its cost
    last = list(zip(todo, costs, strict=True))[-2:]
    return sum(costs) + max(0.0, *(worst_te([t]) - cost for t, cost in last))


def _affordable(
    plan: Plan,
    c: Campaign,
    step: Step,
    hyps: dict[str, Hypothesis],
    worst_te: WorstCase | None,
    left: float,
) -> bool:
    """A validation or combination step runs only when what it costs leaves enough to
    confirm what it may find: a candidate as costly as its costliest hypothesis (a
    combination: its parts' extra costs added), at measured costs where known. Otherwise
    the campaign goes on with what it knows rather than spend the confirmation's budget."""
    f = plan.engine.trial_overhead_te
    step_te = sum(trial_te(t.cost, f) for t in step.trials if t.trial_id not in c.trials)

    def cost_of(hid: str) -> float:
        h = hyps[hid]
        if h.parents:
            return 1.0 + sum(
                max(0.0, measured_te(plan, c, p, hyps[p].cost) - 1.0)
                for p in h.parents
                if p in hyps
            )
        return measured_te(plan, c, hid, h.cost)

    candidate = max((cost_of(t.hypothesis_id) for t in step.trials), default=1.0)
    headroom = _headroom(plan, worst_te) + max(0.0, candidate - 1.0)
    reserve = confirmation_cost(len(plan.engine.confirm_seeds), headroom, candidate)
    return left - step_te >= reserve


def _point_te(
    plan: Plan, c: Campaign, incumbent: str, hyps: dict[str, Hypothesis], worst: WorstCase | None
) -> float:
    """What one search point may cost at worst: a baseline trial's worst case, plus twice (the
    limit's safety) what the costliest point may cost beyond it (the space's longest training,
    or the incumbent's measured cost if higher)."""
    if worst is None:
        return 0.0
    knobs = exploitation.knobs_for(plan, incumbent, hyps)
    cost = max(
        exploitation.longest_point_te(plan, knobs),
        measured_te(plan, c, incumbent, hyps[incumbent].cost),
    )
    base = worst([trial_def(exploitation.PHASE, BASELINE, plan.engine.confirm_seeds[-1])])
    return base + 2.0 * max(0.0, cost - 1.0)


def _headroom(plan: Plan, worst_te: WorstCase | None) -> float:
    """What a confirmation's last trial reserves beyond its expected cost, for a candidate
    that costs what the baseline does (before the search found one to price)."""
    if worst_te is None:
        return 1.0
    seed = plan.engine.confirm_seeds[-1]
    return max(0.0, worst_te([trial_def(exploitation.PHASE, BASELINE, seed)]) - 1.0)


def profile_of(plan: Plan, res: Results) -> TrainingProfile | None:
    curves, diverged = [], 0
    for s in plan.engine.validation_seeds:
        t = res.get(BASELINE, s)
        if t is None:
            continue
        if t.status is TrialStatus.SUCCEEDED:
            curves.append(t.curve)
        elif t.status is TrialStatus.FAILED:
            diverged += 1
    return training_profile(curves, plan.direction, diverged=diverged)


def screen(
    plan: Plan, res: Results, profile: TrainingProfile | None
) -> tuple[list[str], dict[str, Hypothesis], list[RankedHypothesis]]:
    """The hypotheses validation screens, re-ranked with the training profile: the knowledge
    base's entries frozen in the plan are instantiated again with every fact now known (rules
    that waited for the baseline's curve decide now)."""
    pool = {h: plan.hypotheses[h] for h in (r.hypothesis_id for r in plan.ranking)}
    ranking = list(plan.ranking)
    if plan.knowledge and profile is not None:
        from rea_cli.planner.knowledge import candidates, strategies_from_entries
        from rea_cli.planner.plan import hypothesis_of
        from rea_cli.planner.rules import profile_facts

        facts = profile_facts(plan.baseline, plan.data_profile, profile.facts())
        found, _ = candidates(strategies_from_entries(plan.knowledge), plan.baseline, facts)
        pool, ranking = {}, []
        for cand in found:
            h = hypothesis_of(cand, plan.model_family)
            numbers = rank_numbers(
                prior_mean=h.prior_mean,
                prior_sd=h.prior_sd,
                cost=h.cost,
                strategy=h.strategy,
                family=plan.model_family,
                traits=plan.traits,
                history=plan.history_rows(),
            )
            if numbers.history_n:
                h.source = "insights_history"
            pool[cand.hypothesis_id] = h
            ranking.append(RankedHypothesis(hypothesis_id=cand.hypothesis_id, numbers=numbers))
        ranking.sort(key=lambda r: (-r.numbers.score, r.hypothesis_id))
    chosen = [r.hypothesis_id for r in ranking[: plan.engine.screen]]
    return chosen, {h: pool[h] for h in chosen}, ranking


def next_step(
    plan: Plan,
    c: Campaign,
    search: SearchPort | None,
    created_at: str,
    *,
    exhausted: bool = False,
    worst_te: WorstCase | None = None,
) -> Step | Finish:
    """The next step of the campaign (trials to run), or its end (the proposal).

    `exhausted`: the budget cannot hold the worst case of any trial of the last step: end now
    with what is known (the candidate is proposed only if it was already confirmed)."""
    res = Results(c, plan.direction)
    hyps: dict[str, Hypothesis] = {**plan.hypotheses, **c.hypotheses}
    gates: dict[str, Gate] = {}
    rec = c.phases.get("validation")
    selected = list(rec.selected) if rec is not None and rec.selected is not None else None
    left = remaining_te(plan, c)
    confirm_cost = 2.0 * len(plan.engine.confirm_seeds)

    # validation
    new: dict[str, Hypothesis] = {}
    probe = validation.probe_trials(plan)
    if selected is None and res.all_finished(probe):
        selected, new, _ = screen(plan, res, profile_of(plan, res))
        hyps.update(new)
    step, finalists = validation.next_step(plan, c, res, selected or [], hyps)
    if (
        step is not None
        and not exhausted
        and (step.kind == "probe" or _affordable(plan, c, step, hyps, worst_te, left))
    ):
        step.new_hypotheses.update(new)
        step.selected = selected
        return step
    vgate = validation.gate(plan, res, selected or [], finalists)
    gates["validation"] = vgate

    # combination
    cstep, incumbent, cgate = combination.next_step(plan, res, vgate.winners, hyps)
    gates["combination"] = cgate
    if (
        cstep is not None
        and not exhausted
        and _affordable(plan, c, cstep, {**hyps, **cstep.new_hypotheses}, worst_te, left)
    ):
        cstep.gates, cstep.new_hypotheses, cstep.selected = (
            gates,
            {**new, **cstep.new_hypotheses},
            selected,
        )
        return cstep
    hyps.update(cstep.new_hypotheses if cstep else {})
    incumbent = incumbent or BASELINE

    # exploitation: search rounds, each confirmed; another round while the budget allows and
    # the last one improved on the confirmed gain before it
    confirmed: list[Proposal] = []
    candidate = incumbent
    rounds = 0
    for search_round in range(1, plan.engine.search_rounds + 1):
        rounds = search_round
        left = remaining_te(plan, c)
        # keep what confirming the best so far costs (its epochs included), not a fixed share
        best_now = exploitation.best_candidate(plan, res, hyps, incumbent, search_round)
        reserve = max(
            confirm_cost + _headroom(plan, worst_te),
            confirmation_te(plan, c, res, best_now, hyps, worst_te),
        )
        share = max(0.0, left - reserve)
        estep, candidate = exploitation.next_step(
            plan,
            res,
            hyps,
            c.trials,
            incumbent,
            None if exhausted else search,
            share,
            search_round,
            _point_te(plan, c, incumbent, hyps, worst_te),
        )
        if estep is not None and not exhausted:
            estep.gates, estep.selected = gates, selected
            estep.new_hypotheses = {**new, **estep.new_hypotheses}
            return estep
        # the best that can still be confirmed with what is left: a search point that costs
        # more to confirm than the budget holds gives way to the next best (down to the
        # incumbent), rather than the campaign ending with nothing confirmed
        options = [
            h
            for h in exploitation.ranked_candidates(plan, res, hyps, incumbent, search_round)
            if h != BASELINE
        ]
        fits = [h for h in options if confirmation_te(plan, c, res, h, hyps, worst_te) <= left]
        candidate = fits[0] if fits else candidate
        conf = exploitation.confirmation_step(plan, res, candidate, hyps)
        if conf is not None:
            if exhausted or left <= 0:
                break  # the budget ran out before this candidate could be confirmed
            conf.gates, conf.selected, conf.new_hypotheses = gates, selected, new
            conf.gates["exploitation"] = exploitation.search_gate(
                candidate, exploitation.batches_run(hyps), rounds, confirmed
            )
            return conf
        proposal = exploitation.proposal(plan, res, candidate, hyps, created_at)
        best = _best(confirmed)
        improved = proposal.significant and (
            best is None or (proposal.gain or 0.0) > (best.gain or 0.0)
        )
        if improved:
            confirmed.append(proposal)
        if not improved or candidate == BASELINE:
            break
        if remaining_te(plan, c) < confirm_cost / 2 + plan.engine.exploitation_batch:
            break  # not enough left for another round and its confirmation
        incumbent = candidate  # the next round searches around the confirmed candidate
    gates["exploitation"] = exploitation.search_gate(
        candidate, exploitation.batches_run(hyps), rounds, confirmed
    )
    best = _best(confirmed)
    if best is not None:
        return Finish(best, gates)
    why = "no configuration beat the baseline on the search seed" if candidate == BASELINE else ""
    if candidate != BASELINE and not res.all_finished(
        (exploitation.confirmation_step(plan, res, candidate, hyps) or Step("", "", [], "")).trials
    ):
        why = "the budget ran out before the candidate could be confirmed"
        return Finish(
            exploitation.proposal(plan, res, BASELINE, hyps, created_at, f"{why} ({candidate})"),
            gates,
        )
    return Finish(exploitation.proposal(plan, res, candidate, hyps, created_at, why), gates)


def _best(proposals: list[Proposal]) -> Proposal | None:
    return max(proposals, key=lambda p: p.gain or 0.0) if proposals else None
