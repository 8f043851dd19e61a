"""Paired comparisons of a hypothesis against the baseline over seeds. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PairedGain:
    """Gain of a candidate over the baseline, paired by seed; positive means better."""

    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    baseline_mean: float | None
    candidate_mean: float | None

    @property
    def significant(self) -> bool:
        return self.ci_low is not None and self.ci_low > 0


def signed(value: float, direction: str) -> float:
    """Orient a metric so that larger is better."""
    return value if direction == "max" else -value


def paired_gain(
    baseline: Mapping[int, float],
    candidate: Mapping[int, float],
    direction: str,
    confidence: float = 0.95,
) -> PairedGain:
    """Mean per-seed difference candidate - baseline (oriented), with a Student-t interval."""
    seeds = sorted(set(baseline) & set(candidate))
    diffs = [signed(candidate[s], direction) - signed(baseline[s], direction) for s in seeds]
    if not diffs:
        return PairedGain(0, None, None, None, None, None)
    n = len(diffs)
    mean = sum(diffs) / n
    low = high = None
    if n >= 2:
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
        half = _t_quantile(1 - (1 - confidence) / 2, n - 1) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
    return PairedGain(
        n=n,
        mean=mean,
        ci_low=low,
        ci_high=high,
        baseline_mean=_mean([baseline[s] for s in seeds]),
        candidate_mean=_mean([candidate[s] for s in seeds]),
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _t_quantile(p: float, df: int) -> float:
    # scipy.special, not scipy.stats: same Student-t quantile, a tenth of the import time
    from scipy.special import stdtrit

    return float(stdtrit(df, p))
