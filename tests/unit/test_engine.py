"""The hypothesis engine's decisions, on campaign records with given results (pure functions).

The engine is pure: a plan and a campaign record in, a step or the proposal out. These tests
build the records the way the resume step leaves them (succeeded trials with their valid and
test metrics and curves; failed ones) and check what it decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from rea_cli.campaign.model import Budget, Campaign, CurvePoint, PhaseRecord, TrialRecord
from rea_cli.campaign.state import CampaignState, TrialStatus
from rea_cli.config import parse_settings
from rea_cli.planner.engine import Finish, Step, exploitation, next_step, validation
from rea_cli.planner.engine.common import BASELINE, STOP, Results, TrialDef, trial_id
from rea_cli.planner.plan import Plan
from rea_cli.planner.stats import benjamini_hochberg, holm, paired_gain
from tests.plans import real_plan

SETTINGS = parse_settings({"planner": {"max_hypotheses": 4, "validation_seeds": 3}})


def _campaign(plan: Plan) -> Campaign:
    return Campaign(
        campaign_id=plan.campaign_id,
        created_at="t",
        created_by="me",
        state=CampaignState.RUNNING,
        model_family=plan.model_family,
        dataset=plan.dataset,
        metric=plan.metric,
        direction=plan.direction,
        backend="local",
        plan_hash="h",
        budget=Budget(approved_gpu_hours=plan.budget_gpu_hours),
        hypotheses=dict(plan.hypotheses),
    )


def _done(
    c: Campaign,
    phase: str,
    hid: str,
    seed: int,
    value: float | None,
    *,
    fidelity: dict[str, Any] | None = None,
    test: float | None = None,
    curve: list[float] | None = None,
    stopped: str | None = None,
) -> None:
    """Record a finished trial: succeeded with `value`, or failed (diverged) when None."""
    fid = fidelity or {}
    t = TrialRecord(phase=phase, hypothesis_id=hid, seed=seed, fidelity=fid)
    if value is None:
        t.status = TrialStatus.FAILED
    else:
        t.status = TrialStatus.SUCCEEDED
        t.metric_value, t.test_value, t.stopped = (
            value,
            test if test is not None else value,
            stopped,
        )
        points = curve if curve is not None else [value - 0.01, value]
        t.curve = [CurvePoint(epoch=i, value=v) for i, v in enumerate(points)]
    c.trials[trial_id(phase, hid, seed, fid)] = t


@pytest.fixture(scope="module")
def plan() -> Plan:
    return real_plan("e", settings=SETTINGS, budget_gpu_hours=40.0)


def test_the_first_step_is_the_probe(plan: Plan) -> None:
    step = next_step(plan, _campaign(plan), None, "now")
    assert isinstance(step, Step) and step.kind == "probe"
    assert [(t.hypothesis_id, t.seed, t.fidelity) for t in step.trials] == [
        (BASELINE, s, {}) for s in plan.engine.validation_seeds
    ]


def test_after_the_probe_the_screen_is_decided_and_run(plan: Plan) -> None:
    c = _campaign(plan)
    for s in plan.engine.validation_seeds:
        _done(c, "validation", BASELINE, s, 0.70 + s * 0.001, curve=[0.68, 0.69, 0.70])
    step = next_step(plan, c, None, "now")
    assert isinstance(step, Step) and step.phase == "validation"
    assert step.selected is not None and len(step.selected) == plan.engine.screen
    assert {t.hypothesis_id for t in step.trials} <= set(step.selected)
    assert all(h in {**plan.hypotheses, **step.new_hypotheses} for h in step.selected)


@pytest.mark.parametrize(("left_te", "screens"), [(100.0, True), (12.0, False)])
def test_a_screen_runs_only_when_what_it_finds_can_be_confirmed(
    plan: Plan, left_te: float, screens: bool
) -> None:
    """With 12 trial-equivalents left after the probe, screening would leave less than the
    confirmation of what it may find costs (5 seeds x (a candidate + the baseline) and the
    last trial's headroom): no rung is run, the campaign goes on with what it knows. With 100
    left the screen runs."""
    from rea_cli.planner.engine.decide import te_gpu_hours

    c = _campaign(plan)
    for s in plan.engine.validation_seeds:
        _done(c, "validation", BASELINE, s, 0.70 + s * 0.001, curve=[0.68, 0.69, 0.70])
    c.budget.approved_gpu_hours = left_te * te_gpu_hours(plan, c)
    step = next_step(plan, c, None, "now")
    ran = isinstance(step, Step) and step.phase == "validation"
    assert ran is screens, step


def test_gate_corrects_for_choosing_among_many(plan: Plan) -> None:
    """Four hypotheses screened on three seeds: a real effect passes; a lucky one that would
    pass a lone t-test at 0.2 does not survive the correction over all four."""
    c = _campaign(plan)
    seeds = plan.engine.validation_seeds
    base = {0: 0.700, 1: 0.702, 2: 0.698}
    real = {0: 0.720, 1: 0.721, 2: 0.719}  # +0.020 on every seed
    lucky = {0: 0.703, 1: 0.7025, 2: 0.6982}  # small, noisy
    flat = {0: 0.700, 1: 0.701, 2: 0.699}
    for s in seeds:
        _done(c, "validation", BASELINE, s, base[s])
    hyps = ["real", "lucky", "flat", "noise"]
    values = {"real": real, "lucky": lucky, "flat": flat, "noise": {0: 0.699, 1: 0.703, 2: 0.697}}
    for h in hyps:
        for s in seeds:
            _done(c, "validation", h, s, values[h][s])
    res = Results(c, plan.direction)
    lone = paired_gain(base, lucky, "max").p_value
    assert lone is not None and lone < 0.2  # would pass alone
    gate = validation.gate(plan, res, hyps, hyps)
    assert gate.winners == ["real"] and gate.best == "real"
    assert gate.gains["lucky"]["p_adjusted"] > 0.2
    assert "Benjamini-Hochberg" in gate.detail


def test_a_diverged_seed_fails_its_hypothesis(plan: Plan) -> None:
    c = _campaign(plan)
    for s in plan.engine.validation_seeds:
        _done(c, "validation", BASELINE, s, 0.70)
        # a large gain on two seeds, diverged on the third: a failure, not a pair dropped
        _done(c, "validation", "fragile", s, None if s == 2 else 0.75)
    gate = validation.gate(plan, Results(c, plan.direction), ["fragile"], ["fragile"])
    assert gate.winners == [] and gate.gains["fragile"]["failed_seeds"] == [2]
    assert gate.gains["fragile"]["p_value"] == 1.0


def test_hypotheses_stopped_at_a_rung_count_in_the_correction(plan: Plan) -> None:
    c = _campaign(plan)
    for s in plan.engine.validation_seeds:
        _done(c, "validation", BASELINE, s, 0.70 + 0.001 * s)
        _done(c, "validation", "a", s, 0.712 + 0.0012 * s)
    res = Results(c, plan.direction)
    alone = validation.gate(plan, res, ["a"], ["a"])
    crowded = validation.gate(plan, res, ["a", *[f"x{i}" for i in range(12)]], ["a"])
    assert alone.gains["a"]["p_adjusted"] < crowded.gains["a"]["p_adjusted"]
    assert crowded.gains["x0"]["stopped_early"] is True


def test_rungs_compare_at_equal_epochs_and_promote_the_best(plan: Plan) -> None:
    p = plan.model_copy(update={"engine": plan.engine.model_copy(update={"rung_epochs": [1]})})
    c = _campaign(p)
    for s in p.engine.validation_seeds:
        # the baseline's curve: 0.69 after epoch 1, 0.70 at the end
        _done(c, "validation", BASELINE, s, 0.70, curve=[0.69, 0.695, 0.70])
    screened = ["up", "down", "same"]
    for h, v in (("up", 0.70), ("down", 0.68), ("same", 0.69)):
        _done(c, "validation", h, 0, v, fidelity={STOP: 1}, curve=[v])
    res = Results(c, p.direction)
    gains = validation.rung_gains(p, res, screened, 1)
    assert gains == pytest.approx({"up": 0.01, "down": -0.01, "same": 0.0})
    assert validation.promote(p, gains) == ["up"]  # ceil(3 / eta=3) = 1


def test_proposal_keeps_the_baseline_on_a_negative_or_unconfirmed_gain(plan: Plan) -> None:
    seeds = plan.engine.confirm_seeds
    for name, cand, expect in (
        ("negative", [0.69, 0.688, 0.691, 0.689, 0.690], "baseline"),
        ("noisy", [0.71, 0.69, 0.705, 0.695, 0.70], "baseline"),
        ("real", [0.712, 0.711, 0.713, 0.710, 0.712], "cand"),
    ):
        c = _campaign(plan)
        c.hypotheses["cand"] = plan.hypotheses[plan.ranking[0].hypothesis_id]
        for s, v in zip(seeds, cand, strict=True):
            _done(c, "exploitation", BASELINE, s, 0.700 + 0.0001 * (s - 1000))
            _done(c, "exploitation", "cand", s, v)
        res = Results(c, plan.direction)
        hyps = {**plan.hypotheses, **c.hypotheses}
        proposal = exploitation.proposal(plan, res, "cand", hyps, "now")
        assert proposal.hypothesis_id == expect, name
        assert proposal.candidate == "cand" and proposal.n == len(seeds)
        assert proposal.significant == (expect == "cand")
        if expect == "baseline":
            assert proposal.summary.startswith("keep the baseline") and proposal.delta == {}


def test_a_failed_confirmation_seed_keeps_the_baseline(plan: Plan) -> None:
    c = _campaign(plan)
    c.hypotheses["cand"] = plan.hypotheses[plan.ranking[0].hypothesis_id]
    for s in plan.engine.confirm_seeds:
        _done(c, "exploitation", BASELINE, s, 0.70)
        _done(c, "exploitation", "cand", s, None if s == 1003 else 0.75)
    hyps = {**plan.hypotheses, **c.hypotheses}
    proposal = exploitation.proposal(plan, Results(c, plan.direction), "cand", hyps, "now")
    assert proposal.hypothesis_id == BASELINE and "a failed seed" in proposal.summary


def test_no_winner_still_searches_around_the_baseline_then_finishes(plan: Plan) -> None:
    c = _campaign(plan)
    for s in plan.engine.validation_seeds:
        _done(c, "validation", BASELINE, s, 0.70)
    selected = next_step(plan, c, None, "now")
    assert isinstance(selected, Step) and selected.selected
    c.phases.setdefault("validation", PhaseRecord())
    c.phases["validation"].selected = selected.selected
    c.hypotheses.update(selected.new_hypotheses)
    for t in selected.trials:
        _done(c, "validation", t.hypothesis_id, t.seed, 0.69, fidelity=t.fidelity)
    for h in selected.selected:  # every hypothesis at full fidelity, all worse
        for s in plan.engine.validation_seeds:
            _done(c, "validation", h, s, 0.69)
    # without a search port (a dry run): no batch; the candidate is the baseline: finish
    end = next_step(plan, c, None, "now")
    assert isinstance(end, Finish)
    assert end.proposal.hypothesis_id == BASELINE
    assert end.gates["validation"].winners == []


def test_corrections() -> None:
    ps = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5}
    h = holm(ps, 0.05)
    assert h["a"] == (pytest.approx(0.04), True) and not h["c"][1]
    # step-up: at 0.05 only a (0.03 > 2 x 0.05 / 4); at 0.06, b at rank 3 carries c with it
    assert [k for k, (_, r) in benjamini_hochberg(ps, 0.05).items() if r] == ["a"]
    bh = benjamini_hochberg(ps, 0.06)
    assert bh["a"][1] and bh["b"][1] and bh["c"][1] and not bh["d"][1]
    assert bh["b"][0] == pytest.approx(0.04 * 4 / 3) and bh["c"][0] == bh["b"][0]


def test_campaign_seeds_never_share_a_trial_seed() -> None:
    from rea_cli.planner.plan import trial_seeds

    seen: set[int] = set()
    for seed in range(4):
        validation, confirmation = trial_seeds(seed, 20, 20)
        assert not set(validation) & set(confirmation)  # fresh seeds stay fresh
        assert not (set(validation) | set(confirmation)) & seen
        seen |= set(validation) | set(confirmation)
    assert trial_seeds(0, 2, 5) == ([0, 1], [1000, 1001, 1002, 1003, 1004])


def test_a_seeded_plan_trains_on_its_own_seeds() -> None:
    seeded = real_plan("s", settings=SETTINGS, budget_gpu_hours=40.0, seed=2)
    assert seeded.engine.seed == 2
    assert seeded.engine.validation_seeds == [20000, 20001, 20002]
    assert seeded.engine.confirm_seeds[0] == 21000
    probe = next_step(seeded, _campaign(seeded), None, "t")
    assert isinstance(probe, Step) and {t.seed for t in probe.trials} == {20000, 20001, 20002}


def _validated_winner(plan: Plan) -> tuple[Campaign, str]:
    """A campaign whose validation found one clear winner (every other hypothesis worse)."""
    c = _campaign(plan)
    for s in plan.engine.validation_seeds:
        _done(c, "validation", BASELINE, s, 0.70)
    selected = next_step(plan, c, None, "now")
    assert isinstance(selected, Step) and selected.selected
    c.phases.setdefault("validation", PhaseRecord())
    c.phases["validation"].selected = selected.selected
    c.hypotheses.update(selected.new_hypotheses)
    winner = selected.selected[0]
    for t in selected.trials:
        good = t.hypothesis_id == winner
        _done(c, "validation", t.hypothesis_id, t.seed, 0.75 if good else 0.69, fidelity=t.fidelity)
    for h in selected.selected:
        for s in plan.engine.validation_seeds:
            _done(c, "validation", h, s, 0.75 + 0.001 * s if h == winner else 0.69)
    return c, winner


@pytest.mark.parametrize(("left_te", "confirmed"), [(19.0, "winner"), (40.0, "search")])
def test_the_confirmation_fits_what_is_left(plan: Plan, left_te: float, confirmed: str) -> None:
    """The search's best trains 3x longer: confirming it (5 seeds x 3 + 5 baseline trials)
    costs more than 19 trial-equivalents, confirming the validated winner does not. With 19
    left the winner is confirmed rather than nothing; with 40 the search's best."""
    from rea_cli.planner.engine.decide import confirmation_te, te_gpu_hours

    c, winner = _validated_winner(plan)
    hyps = {**plan.hypotheses, **c.hypotheses}
    epochs = int(plan.baseline["train"]["epochs"])
    point = exploitation.search_id(1, 0)
    c.hypotheses[point] = hyps[winner].model_copy(
        update={
            "source": "search",
            "delta": {**hyps[winner].delta, "train.epochs": 3 * epochs},
            "parents": [winner],
            "level": "r1b1",
            "cost": 3.0,
            "study": "s",
            "number": 0,
        }
    )
    _done(c, "exploitation", point, plan.engine.validation_seeds[0], 0.80)
    res = Results(c, plan.direction)
    hyps = {**plan.hypotheses, **c.hypotheses}
    assert (
        confirmation_te(plan, c, res, point, hyps)
        > 19.0
        > confirmation_te(plan, c, res, winner, hyps)
    )
    c.budget.approved_gpu_hours = left_te * te_gpu_hours(plan, c)
    c.budget.spent_gpu_hours = c.budget.reserved_gpu_hours = 0.0
    step = next_step(plan, c, None, "now")
    assert isinstance(step, Step) and step.kind == "confirmation", step
    expect = winner if confirmed == "winner" else point
    assert {t.hypothesis_id for t in step.trials} == {expect, BASELINE}


def test_the_next_best_point_is_confirmed_when_the_best_costs_too_much(plan: Plan) -> None:
    """Two search points beat the validated winner: the best trains 3x longer and cannot be
    confirmed with 19 trial-equivalents, the second trains as long as the baseline and can:
    the second is confirmed (before, the campaign fell back to the winner or ended with
    nothing confirmed when the search ran around the baseline)."""
    from rea_cli.planner.engine.decide import confirmation_te, te_gpu_hours

    c, winner = _validated_winner(plan)
    hyps = {**plan.hypotheses, **c.hypotheses}
    epochs = int(plan.baseline["train"]["epochs"])
    costly, cheap = exploitation.search_id(1, 0), exploitation.search_id(1, 1)
    for number, (hid, factor) in enumerate([(costly, 3), (cheap, 1)]):
        c.hypotheses[hid] = hyps[winner].model_copy(
            update={
                "source": "search",
                "delta": {**hyps[winner].delta, "train.epochs": factor * epochs},
                "parents": [winner],
                "level": "r1b1",
                "cost": float(factor),
                "study": "s",
                "number": number,
            }
        )
    seed = plan.engine.validation_seeds[0]
    _done(c, "exploitation", costly, seed, 0.80)
    _done(c, "exploitation", cheap, seed, 0.78)
    res = Results(c, plan.direction)
    hyps = {**plan.hypotheses, **c.hypotheses}
    assert exploitation.ranked_candidates(plan, res, hyps, winner) == [costly, cheap, winner]
    assert confirmation_te(plan, c, res, costly, hyps) > 19.0
    assert confirmation_te(plan, c, res, cheap, hyps) < 19.0
    c.budget.approved_gpu_hours = 19.0 * te_gpu_hours(plan, c)
    c.budget.spent_gpu_hours = c.budget.reserved_gpu_hours = 0.0
    step = next_step(plan, c, None, "now")
    assert isinstance(step, Step) and step.kind == "confirmation", step
    assert {t.hypothesis_id for t in step.trials} == {cheap, BASELINE}


def test_the_confirmation_keeps_what_its_last_round_reserves(plan: Plan) -> None:
    """The guard reserves a round at its time limits: the confirmation's price holds the
    headroom its last trial needs beyond what it is expected to spend (6 TE reserved for a
    baseline trial expected to cost 1), or the last trial never fits and nothing is confirmed."""
    from rea_cli.planner.engine.decide import confirmation_te

    c, winner = _validated_winner(plan)
    hyps = {**plan.hypotheses, **c.hypotheses}
    res = Results(c, plan.direction)
    seeds = len(plan.engine.confirm_seeds)
    pairs: list[list[str]] = []

    def worst(trials: Sequence[TrialDef]) -> float:
        pairs.append(sorted(t.hypothesis_id for t in trials))
        return 6.0

    cost = hyps[winner].cost  # the baseline's is 1
    spent = seeds * (cost + 1.0)
    assert confirmation_te(plan, c, res, winner, hyps) == pytest.approx(spent + max(cost, 1.0))
    headroom = 6.0 - min(cost, 1.0)  # the last trial, which may go alone, reserves 6
    assert confirmation_te(plan, c, res, winner, hyps, worst) == pytest.approx(spent + headroom)
    assert sorted(pairs) == sorted([[winner], [BASELINE]])


def test_a_confirmation_is_priced_at_what_its_candidate_measured(plan: Plan) -> None:
    """A search point that trains as long as the baseline (nominal cost 1) but took 3 baseline
    trials' time (wider model, more feature fields): its confirmation is priced at 3."""
    from rea_cli.campaign.model import JobRecord
    from rea_cli.planner.engine.decide import confirmation_te, measured_te, te_gpu_hours

    c, winner = _validated_winner(plan)
    point = exploitation.search_id(1, 0)
    hyps = {**plan.hypotheses, **c.hypotheses}
    c.hypotheses[point] = hyps[winner].model_copy(
        update={"source": "search", "level": "r1b1", "cost": 1.0, "study": "s", "number": 0}
    )
    _done(c, "exploitation", point, plan.engine.validation_seeds[0], 0.80)
    hyps = {**plan.hypotheses, **c.hypotheses}
    res = Results(c, plan.direction)
    nominal = confirmation_te(plan, c, res, point, hyps)
    te_s = te_gpu_hours(plan, c) * 3600.0
    record = res.get(point, plan.engine.validation_seeds[0])
    assert record is not None
    record.jobs = [JobRecord(job_id="1_0", round=1, gpu_seconds=3.0 * te_s)]
    assert measured_te(plan, c, point, 1.0) == pytest.approx(3.0)
    assert measured_te(plan, c, point, 4.0) == 4.0  # never below the nominal cost
    seeds = len(plan.engine.confirm_seeds)
    assert confirmation_te(plan, c, res, point, hyps) == pytest.approx(nominal + 2 * seeds + 2)


def test_a_search_batch_is_sized_by_what_its_points_can_cost(plan: Plan) -> None:
    """Points may train up to the space's longest epochs: with 6 TE to spend and points that
    can cost 3, the batch asks 2 points, not 6."""
    knobs = exploitation.knobs_for(plan, BASELINE, plan.hypotheses)
    epochs = int(plan.baseline["train"]["epochs"])
    (knob,) = [k for k in knobs if k.key == "train.epochs"]
    longest = (
        max(float(c) for c in knob.choices) if knob.kind == "choice" else float(knob.high or 0)
    )
    assert exploitation.longest_point_te(plan, knobs) == pytest.approx(max(1.0, longest / epochs))

    asked: list[int] = []

    class Port:
        def ask(
            self, study: str, knobs: Any, n: int, *rest: Any
        ) -> list[tuple[int, dict[str, Any]]]:
            asked.append(n)
            return []

    c = _campaign(plan)
    for s in plan.engine.validation_seeds:
        _done(c, "exploitation", BASELINE, s, 0.70)
    res = Results(c, plan.direction)
    per_point = exploitation.longest_point_te(plan, knobs)
    exploitation.next_step(plan, res, plan.hypotheses, c.trials, BASELINE, Port(), 2 * per_point)  # type: ignore[arg-type]
    assert asked == [min(plan.engine.exploitation_batch, 2)]
    # a point whose worst case (its time limit, as the guard reserves it) is 3 x per_point:
    # the same share holds none
    exploitation.next_step(
        plan,
        res,
        plan.hypotheses,
        c.trials,
        BASELINE,
        Port(),  # type: ignore[arg-type]
        2 * per_point,
        1,
        3 * per_point,
    )
    assert asked == [min(plan.engine.exploitation_batch, 2)]  # not asked at all


def test_a_combination_too_costly_to_confirm_gives_way_to_its_parts(plan: Plan) -> None:
    """The candidates for the confirmation: the search's points that beat the incumbent, the
    incumbent, then (when the incumbent is a combination) its parts, best first."""
    c, winner = _validated_winner(plan)
    hyps = {**plan.hypotheses, **c.hypotheses}
    other = next(h for h in c.phases["validation"].selected or [] if h != winner)
    for s in plan.engine.validation_seeds:
        _done(c, "validation", other, s, 0.72)
    combo = f"{winner}+{other}"
    c.hypotheses[combo] = hyps[winner].model_copy(update={"parents": [winner, other]})
    _done(c, "combination", combo, plan.engine.validation_seeds[0], 0.78)
    res = Results(c, plan.direction)
    hyps = {**plan.hypotheses, **c.hypotheses}
    assert exploitation.ranked_candidates(plan, res, hyps, combo) == [combo, winner, other]


def test_a_measured_config_is_expected_to_take_what_it_took(plan: Plan) -> None:
    """A confirmation repeats a config measured on other seeds: its expected time (and so its
    time limit and the budget's reservation) is what those runs took, not its training length
    over the baseline's (a config that took 3x the baseline's time would time out)."""
    from rea_cli.app.trials import expected_seconds
    from rea_cli.planner.engine.common import trial_def

    c, winner = _validated_winner(plan)
    nominal = trial_def("exploitation", winner, 99, cost=1.0)
    before = expected_seconds(plan, c, nominal)
    for i, t in enumerate(r for r in c.trials.values() if r.hypothesis_id == winner):
        t.device_time_s = 0.0 if t.fidelity else 40.0 + i
    full_runs = [t.device_time_s for t in c.trials.values() if t.device_time_s]
    assert full_runs
    assert expected_seconds(plan, c, nominal) == pytest.approx(
        sorted(full_runs)[len(full_runs) // 2]
    )
    assert expected_seconds(plan, c, nominal) != pytest.approx(before)
    rung = trial_def("validation", winner, 99, {STOP: 1}, cost=0.5)
    assert expected_seconds(plan, c, rung) == pytest.approx(before * 0.5)  # not measured so
