"""Paired gains over retrain seeds and their Student-t intervals. Pure.

Gain = baseline NE - candidate NE on the same retrain seed (positive: the candidate is better).

A diverged run is never dropped from the pairing: a run that failed (TrialFailure, a non-finite
metric, any error) scores NE = 1.0, the NE of predicting the training CTR for every row (the
metric's own definition of "no model"), for the baseline and the candidates alike. The number of
failed runs is reported beside every interval.

Two levels: per search seed, the interval is over its retrain seeds; per method and budget, the
interval is over the search seeds' mean gains (selection varies with the search seed, and that
variation is what comparing search methods is about); with one search seed it falls back to the
retrain seeds of that one.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel
from scipy import stats as sps

FAILED_NE = 1.0
CONFIDENCE = 0.95


class Interval(BaseModel):
    """Mean with a two-sided Student-t interval (None where n < 2)."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    n_failed: int = 0
    ci_over: Literal["retrain_seeds", "search_seeds"] = "retrain_seeds"


def t_interval(
    values: Sequence[float],
    confidence: float = CONFIDENCE,
    *,
    n_failed: int = 0,
    over: Literal["retrain_seeds", "search_seeds"] = "retrain_seeds",
) -> Interval:
    n = len(values)
    if n == 0:
        return Interval(mean=None, ci_low=None, ci_high=None, n=0, n_failed=n_failed, ci_over=over)
    mean = statistics.fmean(values)
    if n < 2:
        return Interval(mean=mean, ci_low=None, ci_high=None, n=1, n_failed=n_failed, ci_over=over)
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * statistics.stdev(values) / math.sqrt(n)
    return Interval(
        mean=mean, ci_low=mean - half, ci_high=mean + half, n=n, n_failed=n_failed, ci_over=over
    )


def scored(value: float | None) -> float:
    """A run's NE for the pairing: its own, or FAILED_NE when it failed."""
    return FAILED_NE if value is None or not math.isfinite(value) else value


def paired_gains(
    baseline: Mapping[int, float | None], candidate: Mapping[int, float | None]
) -> tuple[list[float], int]:
    """Gains per retrain seed (sorted by seed) and the number of failed candidate runs.

    Both mappings are retrain seed -> NE (None: the run failed); they must hold the same seeds.
    """
    if set(baseline) != set(candidate):
        raise ValueError(
            f"unpaired seeds: baseline {sorted(baseline)} vs candidate {sorted(candidate)}"
        )
    seeds = sorted(baseline)
    gains = [scored(baseline[s]) - scored(candidate[s]) for s in seeds]
    failed = sum(candidate[s] is None or not math.isfinite(candidate[s] or 0.0) for s in seeds)
    return gains, failed


def seed_interval(
    baseline: Mapping[int, float | None], candidate: Mapping[int, float | None]
) -> Interval:
    """One search seed's selection: paired gains over the retrain seeds."""
    gains, failed = paired_gains(baseline, candidate)
    return t_interval(gains, n_failed=failed)


def method_interval(per_seed: Sequence[Interval]) -> Interval:
    """A method at a budget over its search seeds (see the module docstring)."""
    usable = [i for i in per_seed if i.mean is not None]
    failed = sum(i.n_failed for i in per_seed)
    if len(usable) == 1:
        return usable[0].model_copy(update={"n_failed": failed})
    return t_interval(
        [i.mean for i in usable if i.mean is not None], n_failed=failed, over="search_seeds"
    )


def ratio(numerator: float | None, denominator: float | None) -> tuple[float | None, str]:
    """numerator / denominator of mean gains, with why it is undefined when it is.

    A ratio of gains only means "x times the improvement" when the denominator is an improvement:
    with a denominator <= 0 (the other method found nothing, or made things worse) the ratio is
    None, and the note says which side is better.
    """
    if numerator is None or denominator is None:
        return None, "undefined: a gain is missing"
    if denominator <= 0:
        side = "higher" if numerator > denominator else "not higher"
        return None, (
            f"undefined: the denominator gain {denominator:.4g} is <= 0 "
            f"(the numerator gain {numerator:.4g} is {side})"
        )
    return numerator / denominator, ""
