"""Planner: hypotheses, the three-phase plan and its cost, gates, stats and the proposal."""

from __future__ import annotations

import math

import pytest

from rea_cli import budget
from rea_cli.campaign.model import Budget, Campaign, JobRecord, PhaseRecord, TrialRecord
from rea_cli.config import Settings, parse_settings
from rea_cli.errors import UsageError
from rea_cli.planner import gates
from rea_cli.planner.plan import build_plan, parse_budget, plan_hash
from rea_cli.planner.stats import paired_gain


def _plan(settings: Settings | None = None, budget_h: float = 4.0, family: str = "dcn_v2"):
    return build_plan(
        campaign_id="c",
        created_at="t",
        goal="",
        family=family,
        dataset="synthetic",
        budget_gpu_hours=budget_h,
        settings=settings or Settings(),
        profile_name="tiny",
    )


@pytest.mark.parametrize(
    ("text", "hours"), [("4gpu-h", 4.0), ("4", 4.0), ("2.5 gpu-h", 2.5), ("90gpu-min", 1.5)]
)
def test_parse_budget(text: str, hours: float) -> None:
    assert parse_budget(text) == pytest.approx(hours)


@pytest.mark.parametrize("text", ["", "lots", "-1gpu-h", "0"])
def test_parse_budget_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="invalid budget"):
        parse_budget(text)


def test_plan_has_three_phases_within_budget() -> None:
    plan = _plan()
    assert [p.phase for p in plan.phases] == ["validation", "combination", "exploitation"]
    assert plan.reserved_gpu_hours <= plan.budget_gpu_hours
    v = plan.phase("validation")
    assert v.max_trials == (len(v.hypotheses) + 1) * len(v.seeds)
    assert v.fidelity["train.data_fraction"] < 1.0
    assert plan.phase("exploitation").fidelity == {}
    for p in plan.phases:
        assert p.reserved_gpu_hours == pytest.approx(
            p.max_trials * p.time_limit_min / 60 * p.gpus_per_trial, abs=1e-3
        )
        assert 0 < p.estimated_gpu_hours <= p.reserved_gpu_hours


def test_plan_hypotheses_are_valid_changes_for_the_family() -> None:
    from ranking_models.config import apply_delta, validate_config

    for family in ("lr", "fm", "deepfm", "dcn_v2", "dlrm", "finalmlp", "wide_deep"):
        plan = _plan(family=family)
        for hid, h in plan.hypotheses.items():
            if hid == "baseline":
                continue
            changed = apply_delta(plan.baseline, h.delta)
            validate_config(changed)
            assert changed != plan.baseline


def test_small_budget_trims_hypotheses_then_refuses() -> None:
    full = _plan(budget_h=10)
    trimmed = _plan(budget_h=full.reserved_gpu_hours * 0.7)
    assert len(trimmed.hypotheses) < len(full.hypotheses)
    assert trimmed.reserved_gpu_hours <= full.reserved_gpu_hours * 0.7
    with pytest.raises(UsageError, match="too small"):
        _plan(budget_h=0.01)


def test_history_reorders_hypotheses() -> None:
    settings = parse_settings({"planner": {"max_hypotheses": 2}})
    plain = build_plan(
        campaign_id="c",
        created_at="t",
        goal="",
        family="dcn_v2",
        dataset="synthetic",
        budget_gpu_hours=4,
        settings=settings,
        profile_name="tiny",
    )
    with_history = build_plan(
        campaign_id="c",
        created_at="t",
        goal="",
        family="dcn_v2",
        dataset="synthetic",
        budget_gpu_hours=4,
        settings=settings,
        profile_name="tiny",
        history={"gelu": 0.02, "emb32": -0.02},
    )
    assert "gelu" not in plain.hypotheses
    assert "gelu" in with_history.hypotheses
    assert with_history.hypotheses["gelu"].source == "insights_history"
    assert "emb32" not in with_history.hypotheses


def test_plan_hash_is_stable() -> None:
    assert plan_hash(b"x") == plan_hash(b"x") != plan_hash(b"y")


def test_paired_gain_matches_t_interval() -> None:
    base = {0: 0.70, 1: 0.71, 2: 0.69}
    cand = {0: 0.72, 1: 0.72, 2: 0.72}
    g = paired_gain(base, cand, "max")
    diffs = [0.02, 0.01, 0.03]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, df=2)
    assert g.mean == pytest.approx(mean)
    assert g.ci_low == pytest.approx(mean - half)
    assert g.ci_high == pytest.approx(mean + half)
    assert g.n == 3
    # lower-is-better metrics are oriented so that a positive gain is an improvement
    assert paired_gain({0: 0.5}, {0: 0.4}, "min").mean == pytest.approx(0.1)
    assert paired_gain({0: 0.5}, {1: 0.4}, "max").n == 0


def _campaign(plan) -> Campaign:
    return Campaign(
        campaign_id="c",
        created_at="t",
        created_by="u",
        model_family=plan.model_family,
        dataset=plan.dataset,
        metric=plan.metric,
        direction=plan.direction,
        backend="local",
        plan_hash="h",
        budget=Budget(approved_gpu_hours=4),
        hypotheses=dict(plan.hypotheses),
    )


def _results(c: Campaign, phase: str, values: dict[str, dict[int, float]]) -> None:
    for hid, by_seed in values.items():
        for seed, value in by_seed.items():
            c.trials[gates.trial_id(phase, hid, seed)] = TrialRecord(
                phase=phase,
                hypothesis_id=hid,
                seed=seed,
                status="succeeded",
                metric_value=value,
                test_value=value,
            )


def test_gates_combine_winners_then_exploit_the_best() -> None:
    settings = parse_settings(
        {
            "planner": {
                "max_hypotheses": 3,
                "validation_seeds": 2,
                "combination_top_k": 2,
                "exploitation_seeds": 3,
            }
        }
    )
    plan = _plan(settings)
    a, b, c_ = plan.phase("validation").hypotheses
    camp = _campaign(plan)
    first = gates.first_phase(plan)
    assert len(first.trials) == 8
    _results(
        camp,
        "validation",
        {
            "baseline": {0: 0.70, 1: 0.70},
            a: {0: 0.72, 1: 0.73},
            b: {0: 0.71, 1: 0.71},
            c_: {0: 0.69, 1: 0.68},
        },
    )
    combo = gates.next_phase(plan, camp, "validation")
    assert combo is not None and combo.gate.winners == [a, b]
    assert [t.hypothesis_id for t in combo.trials] == [f"{a}+{b}", f"{a}+{b}"]
    assert combo.new_hypotheses[f"{a}+{b}"].parents == [a, b]
    camp.phases["combination"] = PhaseRecord(status="done", gate=combo.gate)
    camp.hypotheses.update(combo.new_hypotheses)
    _results(camp, "combination", {f"{a}+{b}": {0: 0.75, 1: 0.76}})
    expl = gates.next_phase(plan, camp, "combination")
    assert expl is not None and expl.gate.best == f"{a}+{b}"
    assert len(expl.trials) == 6  # best + baseline x 3 seeds
    camp.phases["exploitation"] = PhaseRecord(status="done", gate=expl.gate)
    _results(
        camp,
        "exploitation",
        {
            "baseline": {100: 0.70, 101: 0.71, 102: 0.70},
            f"{a}+{b}": {100: 0.75, 101: 0.75, 102: 0.76},
        },
    )
    proposal = gates.make_proposal(plan, camp, "now")
    assert proposal.hypothesis_id == f"{a}+{b}"
    assert proposal.gain == pytest.approx(0.05)
    assert proposal.ci_low is not None and proposal.ci_low > 0
    assert "significant" in proposal.summary


def test_no_winner_skips_to_a_keep_the_baseline_proposal() -> None:
    plan = _plan(parse_settings({"planner": {"max_hypotheses": 1, "validation_seeds": 1}}))
    (a,) = plan.phase("validation").hypotheses
    camp = _campaign(plan)
    _results(camp, "validation", {"baseline": {0: 0.70}, a: {0: 0.60}})
    combo = gates.next_phase(plan, camp, "validation")
    assert combo is not None and combo.trials == [] and combo.gate.passed is False
    camp.phases["combination"] = PhaseRecord(status="skipped", gate=combo.gate)
    expl = gates.next_phase(plan, camp, "combination")
    assert expl is not None and expl.trials == []
    proposal = gates.make_proposal(plan, camp, "now")
    assert proposal.hypothesis_id == "baseline" and "keep the baseline" in proposal.summary


def test_budget_reserved_and_spent() -> None:
    plan = _plan()
    camp = _campaign(plan)
    camp.trials["t1"] = TrialRecord(
        phase="validation",
        hypothesis_id="baseline",
        seed=0,
        jobs=[JobRecord(job_id="1", round=1, state="RUNNING", gpus=2, time_limit_min=30)],
    )
    camp.trials["t2"] = TrialRecord(
        phase="validation",
        hypothesis_id="baseline",
        seed=1,
        jobs=[
            JobRecord(
                job_id="2", round=1, state="COMPLETED", gpus=2, time_limit_min=30, gpu_seconds=3600
            )
        ],
    )
    check = budget.check(camp, new_gpu_hours=2.0)
    assert camp.budget.reserved_gpu_hours == pytest.approx(1.0)
    assert camp.budget.spent_gpu_hours == pytest.approx(1.0)
    assert check.ok  # 1 + 1 + 2 <= 4
    assert not budget.check(camp, new_gpu_hours=2.5).ok
