"""The search-efficiency benchmark's pure parts: compute accounting, selection at a budget,
paired intervals, diverged seeds, the space, the rea campaign reader and the JSON line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from scipy import stats as sps

from benchmarks.searchbench import accounting, report, stats
from benchmarks.searchbench.accounting import RunResult
from benchmarks.searchbench.rea_side import budget_arg, merge_settings, read_campaign_trials
from benchmarks.searchbench.report import BenchLine, Selection
from benchmarks.searchbench.space import baseline_params, hidden_dims, search_space, to_config
from ranking_models.config import FAMILIES, apply_delta, default_config, validate_config
from ranking_models.contracts import AttemptResult, FailureRecord, TrialSpec
from tests.benchmarks.bench_helpers import run, trial

# ---------------------------------------------------------------- accounting


def test_te_unit_is_the_median_of_positive_baseline_runs() -> None:
    assert accounting.te_unit([4.0, 2.0, 9.0]) == 4.0
    assert accounting.te_unit([3.0, math.nan, 5.0]) == 4.0
    with pytest.raises(ValueError, match="no TE unit"):
        accounting.te_unit([0.0, math.nan])


def test_trial_equivalents_accumulate_in_order_of_completion() -> None:
    trials = accounting.with_compute(
        [trial(0, run(0.8, 2.0)), trial(1, run(None, 1.0)), trial(2, run(0.7, 3.0))], unit=2.0
    )
    assert [t.te for t in trials] == [1.0, 0.5, 1.5]
    assert [t.cum_te for t in trials] == [1.0, 1.5, 3.0]
    used = accounting.usage(trials, baseline_samples=50)
    assert used.te == 3.0 and used.n_trials == 3 and used.n_failed == 1
    assert used.sample_eq == 6.0  # 3 runs x 100 samples / 50
    assert used.start_overhead_s == pytest.approx(0.3)
    assert not accounting.done(trials, 3.5) and accounting.done(trials, 3.0)


def _timed(device_s: float, start: float | None, end: float | None, ok: bool = True) -> RunResult:
    base = run(0.8 if ok else None, device_s=device_s)
    return base.model_copy(update={"started_at": start, "ended_at": end})


def test_a_trials_unit_is_the_clock_interpolated_over_its_span() -> None:
    clock = accounting.Clock()
    clock.add(_timed(4.0, 0.0, 4.0))  # a reading at its midpoint, t=2
    clock.add(_timed(8.0, 98.0, 106.0))  # t=102
    clock.add(_timed(6.0, None, 200.0))  # no start: at its end
    clock.add(_timed(99.0, 0.0, None))  # no end: no reading
    clock.add(_timed(99.0, 0.0, 50.0, ok=False))  # failed: no reading
    clock.add(_timed(math.nan, 0.0, 50.0))
    assert clock.readings == [(2.0, 4.0), (102.0, 8.0), (200.0, 6.0)]
    assert clock.median() == 6.0
    assert clock.at(0.0) == 4.0 and clock.at(52.0) == pytest.approx(6.0)
    assert clock.at(151.0) == pytest.approx(7.0) and clock.at(1e9) == 6.0
    # a long trial's unit is the mean over its span: 2 -> 102 rises linearly from 4 to 8
    assert clock.unit_for(_timed(60.0, 2.0, 102.0)) == pytest.approx(6.0)
    assert clock.unit_for(_timed(1.0, None, 52.0)) == pytest.approx(6.0)
    assert clock.unit_for(_timed(1.0, None, None)) == 6.0
    trials = accounting.with_compute(
        [trial(0, _timed(6.0, 2.0, 102.0)), trial(1, _timed(12.0, 150.0, 152.0))], clock
    )
    assert [t.te for t in trials] == pytest.approx([1.0, 12.0 / 7.0])
    with pytest.raises(ValueError, match="no TE unit"):
        accounting.Clock().at(1.0)


def test_best_at_selects_by_valid_within_the_budget_prefix() -> None:
    trials = accounting.with_compute(
        [
            trial(0, run(0.80, ne_test=0.1)),  # test never matters for selection
            trial(1, run(0.78)),
            trial(2, run(None)),  # failed: never selected
            trial(3, run(0.78)),  # a tie: the earlier trial stays
            trial(4, run(0.70, device_s=5.0)),
        ],
        unit=1.0,
    )
    assert accounting.best_at(trials, 0.5) is None
    assert accounting.best_at(trials, 1.0).index == 0  # type: ignore[union-attr]
    assert accounting.best_at(trials, 2.0).index == 1  # type: ignore[union-attr]
    assert accounting.best_at(trials, 8.99).index == 1  # type: ignore[union-attr]
    assert accounting.best_at(trials, 9.0).index == 4  # type: ignore[union-attr]
    assert [t.index for t in accounting.prefix(trials, 4.0)] == [0, 1, 2, 3]


def test_a_budget_below_the_first_trial_keeps_the_baseline() -> None:
    baseline = {"model": {"family": "dcn_v2"}, "train": {"epochs": 3}}
    trials = accounting.with_compute([trial(0, run(0.8, 2.0))], unit=1.0)
    sel = report.select("tpe", 0, trials, 1.0, baseline, baseline_samples=100)
    assert sel.config == baseline and sel.trial_index is None
    assert sel.usage is not None and sel.usage.n_trials == 0
    sel = report.select("tpe", 0, trials, 2.0, baseline, baseline_samples=100)
    assert sel.trial_index == 0 and sel.valid_ne_search == 0.8


def test_a_non_finite_metric_is_no_score() -> None:
    odd = RunResult(status="succeeded", valid={"ne": math.nan}, test={"ne": 0.5})
    assert odd.metric("valid") is None and odd.metric("test") == 0.5
    assert run(None).metric("test") is None


# ---------------------------------------------------------------- paired statistics


def test_paired_interval_is_student_t_over_retrain_seeds() -> None:
    base = {1000: 0.80, 1001: 0.81, 1002: 0.82}
    cand = {1000: 0.79, 1001: 0.79, 1002: 0.79}
    iv = stats.seed_interval(base, cand)
    half = sps.t.ppf(0.975, 2) * 0.01 / math.sqrt(3)
    assert iv.mean == pytest.approx(0.02)
    assert iv.ci_low == pytest.approx(0.02 - half) and iv.ci_high == pytest.approx(0.02 + half)
    assert iv.n == 3 and iv.n_failed == 0 and iv.ci_over == "retrain_seeds"


def test_a_diverged_seed_counts_as_the_no_model_score_never_dropped() -> None:
    base = {1000: 0.80, 1001: 0.80}
    gains, failed = stats.paired_gains(base, {1000: 0.78, 1001: None})
    assert gains == pytest.approx([0.02, 0.80 - stats.FAILED_NE]) and failed == 1
    iv = stats.seed_interval(base, {1000: 0.78, 1001: None})
    assert iv.n == 2 and iv.n_failed == 1 and iv.mean is not None and iv.mean < 0
    # a diverged baseline seed scores the same way: the pairing keeps every seed
    gains, failed = stats.paired_gains({1000: None, 1001: 0.8}, {1000: 0.78, 1001: 0.8})
    assert gains == pytest.approx([stats.FAILED_NE - 0.78, 0.0]) and failed == 0
    with pytest.raises(ValueError, match="unpaired"):
        stats.paired_gains(base, {1000: 0.7})


def test_method_interval_is_over_search_seeds_and_falls_back_to_one_seed() -> None:
    a = stats.t_interval([0.01, 0.03], n_failed=1)
    b = stats.t_interval([0.02, 0.02])
    both = stats.method_interval([a, b])
    assert both.ci_over == "search_seeds" and both.n == 2 and both.n_failed == 1
    assert both.mean == pytest.approx(0.02) and both.ci_low == pytest.approx(0.02)
    one = stats.method_interval([a])
    assert one.ci_over == "retrain_seeds" and one.n == 2 and one.n_failed == 1
    assert stats.method_interval([]).mean is None


def test_ratio_is_undefined_when_the_denominator_gained_nothing() -> None:
    assert stats.ratio(0.03, 0.02) == (pytest.approx(1.5), "")
    value, note = stats.ratio(0.01, 0.0)
    assert value is None and "<= 0" in note and "is higher" in note
    value, note = stats.ratio(-0.02, -0.01)
    assert value is None and "not higher" in note
    assert stats.ratio(None, 0.1)[0] is None


# ---------------------------------------------------------------- the search space


@pytest.mark.parametrize("family", FAMILIES)
def test_space_holds_the_baseline_and_only_keys_of_the_family(family: str) -> None:
    baseline = apply_delta(default_config(family), {"train.monitor": "ne"})
    space = search_space(baseline)
    assert to_config(baseline, baseline_params(baseline)) == baseline
    assert ("cross_layers" in space) == (family == "dcn_v2")
    assert ("embedding_dim" in space) == (family != "lr")
    assert {"lr_dense", "lr_sparse", "weight_decay", "batch_size_log2", "epochs"} <= set(space)
    lr = space["lr_sparse"]
    assert isinstance(lr, optuna.distributions.FloatDistribution) and lr.log
    assert lr.low == pytest.approx(baseline["train"]["lr_sparse"] / 10)
    assert space["epochs"].high == 3 * baseline["train"]["epochs"]  # type: ignore[attr-defined]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(15):  # every sampled point is a valid config of the family
        config = to_config(baseline, study.ask(space).params)
        validate_config(config)
        assert config["model"]["family"] == family


def test_mlp_widths_halve_and_respect_the_heads() -> None:
    assert hidden_dims(128, 2) == [128, 64]
    assert hidden_dims(100, 3, multiple=2) == [100, 50, 24]
    assert hidden_dims(5, 4, multiple=2) == [4, 2, 2, 2]


# ---------------------------------------------------------------- the rea side (files only)


def test_merge_settings_replaces_a_section_and_budget_parses_back() -> None:
    from rea_cli.planner.plan import parse_budget

    text = "[local]\nmax_parallel = 2\ntime_limit_min = 30\n\n[planner]\nmetric = 'auc'\n"
    merged = merge_settings(text, "[local]\nmax_parallel = 1\n")
    assert merged.count("[local]") == 1 and "max_parallel = 1" in merged
    assert "time_limit_min" not in merged and "[planner]" in merged
    assert parse_budget(budget_arg(0.0123)) == pytest.approx(0.0123, rel=1e-3)


def _attempt(campaign: Path, tid: str, seed: int, attempt: int, ended: str, **fields: Any) -> None:
    trial_dir = campaign / "trials" / tid
    folder = trial_dir / "attempts" / str(attempt)
    folder.mkdir(parents=True, exist_ok=True)
    spec = TrialSpec(
        trial_id=tid,
        phase="validation",
        seed=seed,
        config=default_config("dcn_v2"),
        data={"name": "movielens-100k"},
        checkpoint_dir=str(trial_dir / "ckpt"),
        attempts_dir=str(trial_dir / "attempts"),
    )
    (trial_dir / "spec.json").write_text(json.dumps(spec.dump()))
    result = AttemptResult(trial_id=tid, attempt=attempt, ended_at=ended, **fields)
    (folder / "result.json").write_text(json.dumps(result.dump()))


def test_rea_compute_is_read_from_every_attempt_in_order_of_completion(tmp_path: Path) -> None:
    campaign = tmp_path / "c1"
    ok = {"status": "succeeded", "valid": {"ne": 0.8}, "test": {"ne": 0.79}, "samples_seen": 10}
    _attempt(campaign, "b-s0", 0, 1, "2026-01-01T00:00:05+00:00", device_time_s=2.0, **ok)
    _attempt(campaign, "a-s1", 1, 1, "2026-01-01T00:00:09+00:00", device_time_s=4.0, **ok)
    failure = FailureRecord(kind="nan_loss", message="loss is nan")
    _attempt(
        campaign,
        "c-s0",
        0,
        1,
        "2026-01-01T00:00:01+00:00",
        status="failed",
        failure=failure,
        device_time_s=1.0,
        startup_s=0.5,
    )
    (campaign / "trials" / "c-s0" / "attempts" / "2").mkdir()  # killed: no result.json
    _attempt(campaign, "d-s0", 0, 1, "2026-01-01T00:00:02+00:00", device_time_s=None, **ok)
    trials, missing = read_campaign_trials(campaign, unit=2.0, seed=7)
    assert [t.params["trial_id"] for t in trials] == ["c-s0", "b-s0", "a-s1"]
    assert [t.cum_te for t in trials] == [0.5, 1.5, 3.5]
    assert missing == 2
    assert trials[0].result.failure == "nan_loss: loss is nan" and trials[0].valid_score is None
    assert trials[2].seed == 1 and trials[2].search_seed == 7 and trials[2].method == "rea"
    assert trials[2].result.ended_at == pytest.approx(1767225609.0)  # 2026-01-01T00:00:09Z


# ---------------------------------------------------------------- the JSON line


def _selection(
    method: str, seed: int, budget: float, config: dict[str, Any], te: float
) -> Selection:
    usage = accounting.Usage(te=te, sample_eq=te, start_overhead_s=1.0, n_trials=3, n_failed=0)
    return Selection(method=method, search_seed=seed, budget_te=budget, config=config, usage=usage)


def test_json_line_schema_ratios_targets_and_warm_start() -> None:
    base = {"model": {"family": "dcn_v2", "embedding_dim": 16}, "train": {"epochs": 3}}
    better = {"model": {"family": "dcn_v2", "embedding_dim": 32}, "train": {"epochs": 3}}
    worse = {"model": {"family": "dcn_v2", "embedding_dim": 8}, "train": {"epochs": 3}}
    seeds = [1000, 1001]
    ne = {json.dumps(base): 0.80, json.dumps(better): 0.78, json.dumps(worse): 0.81}

    def lookup(config: dict[str, Any], seed: int) -> RunResult:
        if config == worse and seed == 1001:
            return run(None)  # diverged
        return run(ne[json.dumps(config)] + (seed - 1000) * 1e-3)

    sels = {
        ("10", "tpe"): [_selection("tpe", s, 10, worse, 9.5) for s in (0, 1)],
        ("10", "rea"): [_selection("rea", s, 10, better, 8.0) for s in (0, 1)],
        ("30", "tpe"): [_selection("tpe", s, 30, better, 29.0) for s in (0, 1)],
        ("30", "rea"): [_selection("rea", s, 30, better, 25.0) for s in (0, 1)],
        ("15", "rea-warm"): [_selection("rea-warm", s, 15, base, 12.0) for s in (0, 1)],
    }
    outcomes = {
        k: [o for s in v if (o := report.seed_outcome(s, base, seeds, lookup))]
        for k, v in sels.items()
    }
    results: dict[str, dict[str, report.MethodResult]] = {}
    for (budget, method), outs in outcomes.items():
        if method != "rea-warm":
            results.setdefault(budget, {})[method] = report.method_result(
                sels[(budget, method)], outs
            )
    tpe10 = results["10"]["tpe"]
    assert tpe10.test_gain.n_failed == 2 and tpe10.test_gain.mean is not None
    assert tpe10.test_gain.mean < -0.05  # the diverged seeds weigh in
    assert outcomes[("10", "rea")][0].delta == {"model.embedding_dim": 32}
    line = BenchLine(
        dataset="movielens-100k",
        data={"name": "movielens-100k"},
        model="dcn_v2",
        budgets_te=[10, 30],
        methods=["tpe", "rea"],
        search_seeds=[0, 1],
        retrain_seeds=seeds,
        te_seconds=4.2,
        te_seconds_range=[3.9, 5.0],
        n_clock_readings=12,
        baseline_samples=240000,
        wall_time_s=12.0,
        baseline=report.BaselineFigures(valid_ne=0.8, test_ne=0.8, n_failed=0),
        results=results,
    )
    line.ratios = {b: report.ratios(r) for b, r in results.items()}
    line.rea_small_vs_best_large = report.cross_budget(results, [10, 30])
    line.warm_start = report.warm_start(outcomes[("30", "rea")], outcomes[("15", "rea-warm")], 30)
    line.targets = report.targets(line)

    parsed = json.loads(json.dumps(line.model_dump(mode="json")))
    again = BenchLine.model_validate(parsed)
    assert again == line
    assert set(parsed["results"]) == {"10", "30"}
    gain = parsed["results"]["30"]["rea"]["test_gain"]
    assert set(gain) >= {"mean", "ci_low", "ci_high", "n", "n_failed", "ci_over"}
    assert gain["mean"] == pytest.approx(0.02)
    assert parsed["results"]["30"]["rea"]["te_used"] == 25.0
    assert parsed["ratios"]["30"]["rea/tpe"]["ratio"] == pytest.approx(1.0)
    assert parsed["ratios"]["10"]["rea/tpe"]["ratio"] is None  # TPE's gain is negative
    assert parsed["targets"]["rea_ge_1.5x_tpe_at_10"] is True  # rea gained, TPE lost
    assert parsed["targets"]["rea_at_10_ge_tpe_at_30"] is True
    assert parsed["rea_small_vs_best_large"]["tpe"]["rea_test_gain"] == pytest.approx(0.02)
    warm = parsed["warm_start"]
    assert warm["second_budget_te"] == 15 and warm["reached"] is False and warm["met"] is False
    assert warm["second_test_gain"]["mean"] == 0.0 and warm["second_te_used"] == 12.0
    assert parsed["targets"]["warm_start_reaches_first_gain_with_half_compute"] is False
    # the same selection as the first with under half its compute meets the target
    same = [
        o.model_copy(
            update={
                "selection": o.selection.model_copy(
                    update={
                        "usage": accounting.Usage(
                            te=12.5, sample_eq=1, start_overhead_s=0, n_trials=2, n_failed=0
                        )
                    }
                )
            }
        )
        for o in outcomes[("30", "rea")]
    ]
    met = report.warm_start(outcomes[("30", "rea")], same, 30)
    assert met.reached is True and met.met is True and met.gain_ratio == pytest.approx(1.0)
    nothing = report.warm_start(outcomes[("15", "rea-warm")], outcomes[("15", "rea-warm")], 30)
    assert nothing.reached is False and "nothing to reach" in nothing.note
    text = "\n".join(report.human_lines(line))
    assert "rea/tpe" in text and "not met" in text


@pytest.mark.parametrize("method", ["tpe", "random"])
def test_a_search_starts_from_the_baseline_and_stops_at_the_largest_budget(method: str) -> None:
    from benchmarks.searchbench.searches import Search

    baseline = apply_delta(default_config("dcn_v2"), {"train.monitor": "ne"})
    search = Search(method, 3, baseline)
    assert search.ask() == baseline  # trial 0: the same run as the TE unit's on this seed
    search.tell(run(0.80, device_s=2.0), unit=2.0)
    configs = []
    while not search.finished(4.0):
        configs.append(search.ask())
        failed = len(search.trials) == 2
        search.tell(run(None if failed else 0.79, device_s=1.0), unit=2.0)
    assert [t.cum_te for t in search.trials] == [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert all(t.seed == 3 and t.search_seed == 3 for t in search.trials)
    states = [t.state.name for t in search.study.trials]
    assert states[2] == "FAIL" and states.count("COMPLETE") == 6
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == len(configs)
    with pytest.raises(RuntimeError):
        search.tell(run(0.7), unit=2.0)


def test_a_logloss_monitor_is_read_as_ne_and_nothing_else_changes() -> None:
    from benchmarks.search_efficiency import same_monitor

    config = default_config("dcn_v2")
    assert config["train"]["monitor"] == "logloss"
    moved = same_monitor(config)
    assert moved is not None and moved["train"]["monitor"] == "ne"
    assert flat(moved, config) == {"train.monitor": "ne"}
    auc = apply_delta(config, {"train.monitor": "auc"})
    assert same_monitor(auc) == auc and same_monitor(None) is None


def flat(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return report.flat_delta(b, a)
