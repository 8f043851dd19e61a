"""Selections -> gains, ratios and the benchmark's JSON line (its schema is the models here).

Pure: the retrain results come in through a lookup function, so every figure can be checked on
hand-made runs.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from benchmarks.searchbench import accounting, stats
from benchmarks.searchbench.accounting import RunResult, TrialRecord
from benchmarks.searchbench.stats import Interval

Lookup = Callable[[dict[str, Any], int], RunResult]


class Selection(BaseModel):
    """What one method chose on one search seed at one budget, and the compute it had used."""

    method: str
    search_seed: int
    budget_te: float
    config: dict[str, Any] | None  # None: no result (the run failed; see error)
    trial_index: int | None = None  # None: no trial within the budget, the baseline is kept
    valid_ne_search: float | None = None  # the selected trial's own valid NE in the search
    usage: accounting.Usage | None = None
    error: str | None = None


def select(
    method: str,
    search_seed: int,
    trials: Sequence[TrialRecord],
    budget_te: float,
    baseline: dict[str, Any],
    baseline_samples: int,
) -> Selection:
    """A search's selection at a budget: best by valid within the prefix (else the baseline)."""
    best = accounting.best_at(trials, budget_te)
    return Selection(
        method=method,
        search_seed=search_seed,
        budget_te=budget_te,
        config=best.config if best else baseline,
        trial_index=best.index if best else None,
        valid_ne_search=best.valid_score if best else None,
        usage=accounting.usage(accounting.prefix(trials, budget_te), baseline_samples),
    )


class SeedOutcome(BaseModel):
    """One selection retrained on the fresh seeds, paired with the baseline."""

    selection: Selection
    delta: dict[str, Any] = Field(default_factory=dict)
    test_gain: Interval
    valid_gain: Interval


class MethodResult(BaseModel):
    """A method at a budget over its search seeds (the compute figures are means per seed)."""

    test_gain: Interval
    valid_gain: Interval
    te_used: float | None
    sample_eq: float | None
    start_overhead_s: float | None
    n_trials: float | None
    n_seeds: int
    errors: list[str] = Field(default_factory=list)


class RatioResult(BaseModel):
    ratio: float | None
    note: str = ""


class CrossBudget(BaseModel):
    """rea at the smallest budget against another method's best at the largest."""

    rea_budget_te: float
    other: str
    other_budget_te: float
    rea_test_gain: float | None
    other_test_gain: float | None
    met: bool | None


class WarmStart(BaseModel):
    """A second campaign in the first's workspace (no review accepted), with half the budget
    and another `rea plan --seed` (no trial identical to the first's: it gains by the history).

    reached: the second's mean test gain >= the first's, and the first's is > 0 (a campaign
    that gained nothing leaves nothing to reach); met: reached, using at most half the
    first's compute (trial-equivalents actually used, not the budgets).
    """

    first_budget_te: float
    second_budget_te: float
    first_te_used: float | None
    second_te_used: float | None
    first_test_gain: Interval
    second_test_gain: Interval
    gain_ratio: float | None
    note: str = ""
    reached: bool | None
    met: bool | None


class BaselineFigures(BaseModel):
    valid_ne: float | None
    test_ne: float | None
    n_failed: int


class BenchLine(BaseModel):
    """The benchmark's last line."""

    benchmark: Literal["search_efficiency"] = "search_efficiency"
    dataset: str
    data: dict[str, Any]
    model: str
    metric: str = accounting.METRIC
    budgets_te: list[float]
    methods: list[str]
    search_seeds: list[int]
    retrain_seeds: list[int]
    te_seconds: float  # median of the clock readings (full-fidelity baseline runs)
    te_seconds_range: list[float]  # their min and max: how much the machine's speed drifted
    n_clock_readings: int
    baseline_samples: int
    # median wall time of a baseline trial run as a process (what a local allocation is
    # charged), from a probe before each rea campaign
    alloc_seconds: float | None = None
    baseline: BaselineFigures
    results: dict[str, dict[str, MethodResult]]
    at_rea_compute: dict[str, dict[str, MethodResult]] = Field(default_factory=dict)
    ratios: dict[str, dict[str, RatioResult]] = Field(default_factory=dict)
    rea_small_vs_best_large: dict[str, CrossBudget] = Field(default_factory=dict)
    warm_start: WarmStart | None = None
    targets: dict[str, bool | None] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    wall_time_s: float
    log_file: str | None = None


def budget_key(budget: float) -> str:
    return f"{budget:g}"


def flat_delta(baseline: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The dotted keys where config differs from baseline."""
    out = {}
    for section, values in config.items():
        base = baseline.get(section, {})
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if base.get(key) != value:
                out[f"{section}.{key}"] = value
    return out


def metric_map(
    lookup: Lookup, config: dict[str, Any], seeds: Sequence[int], split: Literal["valid", "test"]
) -> dict[int, float | None]:
    return {s: lookup(config, s).metric(split) for s in seeds}


def seed_outcome(
    sel: Selection, baseline: dict[str, Any], seeds: Sequence[int], lookup: Lookup
) -> SeedOutcome | None:
    if sel.config is None:
        return None
    gains = {
        split: stats.seed_interval(
            metric_map(lookup, baseline, seeds, split), metric_map(lookup, sel.config, seeds, split)
        )
        for split in ("valid", "test")
    }
    return SeedOutcome(
        selection=sel,
        delta=flat_delta(baseline, sel.config),
        test_gain=gains["test"],
        valid_gain=gains["valid"],
    )


def _mean(values: Sequence[float | None]) -> float | None:
    usable = [v for v in values if v is not None]
    return statistics.fmean(usable) if usable else None


def method_result(selections: Sequence[Selection], outcomes: Sequence[SeedOutcome]) -> MethodResult:
    """Aggregate one method at one budget over its search seeds."""
    used = [s.usage for s in selections if s.usage is not None]
    return MethodResult(
        test_gain=stats.method_interval([o.test_gain for o in outcomes]),
        valid_gain=stats.method_interval([o.valid_gain for o in outcomes]),
        te_used=_mean([u.te for u in used]),
        sample_eq=_mean([u.sample_eq for u in used]),
        start_overhead_s=_mean([u.start_overhead_s for u in used]),
        n_trials=_mean([float(u.n_trials) for u in used]),
        n_seeds=len(outcomes),
        errors=[f"seed {s.search_seed}: {s.error}" for s in selections if s.error],
    )


def ratios(results: dict[str, MethodResult]) -> dict[str, RatioResult]:
    """rea's mean test gain over each other method's, at one budget."""
    rea = results.get("rea")
    if rea is None:
        return {}
    out = {}
    for other, res in results.items():
        if other != "rea":
            value, note = stats.ratio(rea.test_gain.mean, res.test_gain.mean)
            out[f"rea/{other}"] = RatioResult(ratio=value, note=note)
    return out


def cross_budget(
    results: dict[str, dict[str, MethodResult]], budgets: Sequence[float]
) -> dict[str, CrossBudget]:
    """rea at the smallest budget vs each other method at the largest."""
    small, large = budget_key(min(budgets)), budget_key(max(budgets))
    rea = results.get(small, {}).get("rea")
    if rea is None or small == large:
        return {}
    out = {}
    for other, res in results.get(large, {}).items():
        if other == "rea":
            continue
        a, b = rea.test_gain.mean, res.test_gain.mean
        out[other] = CrossBudget(
            rea_budget_te=min(budgets),
            other=other,
            other_budget_te=max(budgets),
            rea_test_gain=a,
            other_test_gain=b,
            met=None if a is None or b is None else a >= b,
        )
    return out


def warm_start(
    first: Sequence[SeedOutcome], second: Sequence[SeedOutcome], first_budget: float
) -> WarmStart:
    """The warm-start figure over the search seeds (see WarmStart)."""
    a = stats.method_interval([o.test_gain for o in first])
    b = stats.method_interval([o.test_gain for o in second])
    value, note = stats.ratio(b.mean, a.mean)
    te_a = _mean([o.selection.usage.te for o in first if o.selection.usage])
    te_b = _mean([o.selection.usage.te for o in second if o.selection.usage])
    reached: bool | None = None
    if a.mean is not None and b.mean is not None:
        reached = a.mean > 0 and b.mean >= a.mean
        if a.mean <= 0:
            note = "the first campaign gained nothing on test: nothing to reach"
    met = (
        None
        if reached is None or te_a is None or te_b is None
        else (reached and te_b <= 0.5 * te_a + 1e-9)
    )
    return WarmStart(
        first_budget_te=first_budget,
        second_budget_te=first_budget / 2,
        first_te_used=te_a,
        second_te_used=te_b,
        first_test_gain=a,
        second_test_gain=b,
        gain_ratio=value,
        note=note,
        reached=reached,
        met=met,
    )


def targets(line: BenchLine) -> dict[str, bool | None]:
    """The issue's targets, met or not (None: not measured in this run)."""
    small, large = budget_key(min(line.budgets_te)), budget_key(max(line.budgets_te))
    at_small = line.results.get(small, {})
    out: dict[str, bool | None] = {
        f"rea_ge_1.5x_tpe_at_{small}": at_least(at_small.get("rea"), at_small.get("tpe"), 1.5)
    }
    if small != large:
        cross = line.rea_small_vs_best_large.get("tpe")
        out[f"rea_at_{small}_ge_tpe_at_{large}"] = cross.met if cross else None
    out["warm_start_reaches_first_gain_with_half_compute"] = (
        line.warm_start.met if line.warm_start else None
    )
    return out


def at_least(a: MethodResult | None, b: MethodResult | None, factor: float) -> bool | None:
    """a's mean test gain >= factor x b's. When b gained nothing (<= 0) a multiple means
    nothing: a meets it by gaining anything at all (> 0)."""
    if a is None or b is None or a.test_gain.mean is None or b.test_gain.mean is None:
        return None
    if b.test_gain.mean <= 0:
        return a.test_gain.mean > 0
    return a.test_gain.mean >= factor * b.test_gain.mean


def human_lines(line: BenchLine) -> list[str]:
    """A readable table of the results (before the JSON line)."""
    out = [
        f"dataset {line.dataset}, model {line.model}, metric test {line.metric} gain "
        f"(baseline NE - candidate NE; positive is better)",
        f"1 TE = {line.te_seconds:.2f} device-s (median of {line.n_clock_readings} baseline runs, "
        f"{line.te_seconds_range[0]:.2f}-{line.te_seconds_range[1]:.2f}: a trial's unit is "
        f"interpolated between them over its own span); "
        f"baseline test NE {_fmt(line.baseline.test_ne)}",
        f"{'budget':>7} {'method':>10} {'test gain':>10} {'95% CI':>22} {'valid gain':>10} "
        f"{'TE used':>8} {'sample-eq':>9} {'start s':>8} {'trials':>6}",
    ]
    rows = [(b, m, r) for b, per in line.results.items() for m, r in per.items()]
    rows += [(b, f"{m}@rea", r) for b, per in line.at_rea_compute.items() for m, r in per.items()]
    for budget, method, r in rows:
        g = r.test_gain
        ci = f"[{_fmt(g.ci_low)}, {_fmt(g.ci_high)}]"
        valid = _fmt(r.valid_gain.mean)
        out.append(
            f"{budget:>7} {method:>10} {_fmt(g.mean):>10} {ci:>22} {valid:>10} "
            f"{_fmt(r.te_used, '.1f'):>8} {_fmt(r.sample_eq, '.1f'):>9} "
            f"{_fmt(r.start_overhead_s, '.1f'):>8} {_fmt(r.n_trials, '.1f'):>6}"
            + (f"  ({len(r.errors)} error(s))" if r.errors else "")
        )
    if line.at_rea_compute:
        out.append("(x@rea: method x at the compute each rea campaign actually used)")
    if line.warm_start:
        w = line.warm_start
        out.append(
            f"warm start: a second campaign with {w.second_budget_te:g} TE used "
            f"{_fmt(w.second_te_used, '.1f')} TE for test gain {_fmt(w.second_test_gain.mean)} "
            f"vs the first's {_fmt(w.first_test_gain.mean)} with {_fmt(w.first_te_used, '.1f')} TE"
            + (f" ({w.note})" if w.note else "")
        )
    for budget, rs in line.ratios.items():
        for name, q in rs.items():
            out.append(f"ratio {name} at {budget} TE: {_fmt(q.ratio, '.2f')} {q.note}".rstrip())
    for name, met in line.targets.items():
        out.append(f"target {name}: {'met' if met else 'not met' if met is False else 'n/a'}")
    out += [f"warning: {w}" for w in line.warnings] + [f"error: {e}" for e in line.errors]
    out.append(f"wall time {line.wall_time_s / 60:.1f} min")
    return out


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)
