"""Paired comparisons over seeds, and corrections for choosing among many. Pure functions.

The one home of rea's gain statistics: the gates, the proposal and the report use these; the
insights view `hypothesis_effects` computes the same mean and interval in SQL (tests check that
they agree).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PairedGain:
    """Gain of a candidate over the baseline, paired by seed; positive means better.

    p_value is one-sided (H1: the gain is positive), from the paired Student t statistic; None
    when it cannot be computed (fewer than two pairs). `failed` counts seeds where the candidate
    has no usable result while the baseline has one: a failure, never silently dropped.
    """

    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    baseline_mean: float | None
    candidate_mean: float | None
    sd: float | None = None
    p_value: float | None = None
    failed: int = 0

    @property
    def significant(self) -> bool:
        return self.failed == 0 and self.ci_low is not None and self.ci_low > 0

    def relative(self) -> float | None:
        """The mean gain as a fraction of the baseline's mean (the knowledge base's unit)."""
        if self.mean is None or not self.baseline_mean:
            return None
        return self.mean / abs(self.baseline_mean)


def signed(value: float, direction: str) -> float:
    """Orient a metric so that larger is better."""
    return value if direction == "max" else -value


def paired_gain(
    baseline: Mapping[int, float],
    candidate: Mapping[int, float],
    direction: str,
    confidence: float = 0.95,
    failed_seeds: Sequence[int] = (),
) -> PairedGain:
    """Mean per-seed difference candidate - baseline (oriented), a Student-t interval and a
    one-sided p-value. `failed_seeds`: seeds where the candidate failed (diverged)."""
    seeds = sorted(set(baseline) & set(candidate))
    diffs = [signed(candidate[s], direction) - signed(baseline[s], direction) for s in seeds]
    failed = len(set(failed_seeds) & set(baseline))
    if not diffs:
        return PairedGain(0, None, None, None, None, None, failed=failed)
    n = len(diffs)
    mean = sum(diffs) / n
    low = high = sd = p = None
    if n >= 2:
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
        half = t_quantile(1 - (1 - confidence) / 2, n - 1) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
        p = one_sided_p(mean, sd, n)
    return PairedGain(
        n=n,
        mean=mean,
        ci_low=low,
        ci_high=high,
        baseline_mean=_mean([baseline[s] for s in seeds]),
        candidate_mean=_mean([candidate[s] for s in seeds]),
        sd=sd,
        p_value=p,
        failed=failed,
    )


def one_sided_p(mean: float, sd: float, n: int) -> float:
    """P(T >= t) for the paired t statistic with n - 1 degrees of freedom (H1: mean > 0)."""
    if sd == 0:
        return 0.0 if mean > 0 else 1.0
    from scipy.special import stdtr

    t = mean / (sd / math.sqrt(n))
    return float(stdtr(n - 1, -t))


def holm(p_values: Mapping[str, float], alpha: float) -> dict[str, tuple[float, bool]]:
    """Holm's step-down correction: id -> (adjusted p, rejected at alpha). Controls the
    family-wise error over every id given (give every hypothesis screened, not only the best)."""
    order = sorted(p_values, key=lambda k: (p_values[k], k))
    m = len(order)
    out: dict[str, tuple[float, bool]] = {}
    running, still = 0.0, True
    for i, key in enumerate(order):
        running = max(running, min(1.0, (m - i) * p_values[key]))
        still = still and running <= alpha
        out[key] = (running, still)
    return out


def benjamini_hochberg(p_values: Mapping[str, float], q: float) -> dict[str, tuple[float, bool]]:
    """Benjamini-Hochberg step-up: id -> (adjusted p, rejected at false discovery rate q)."""
    order = sorted(p_values, key=lambda k: (p_values[k], k))
    m = len(order)
    adjusted: dict[str, float] = {}
    running = 1.0
    for i in range(m - 1, -1, -1):
        key = order[i]
        running = min(running, p_values[key] * m / (i + 1))
        adjusted[key] = min(1.0, running)
    return {k: (adjusted[k], adjusted[k] <= q) for k in order}


def correct(
    method: str, p_values: Mapping[str, float], level: float
) -> dict[str, tuple[float, bool]]:
    if method == "holm":
        return holm(p_values, level)
    if method == "bh":
        return benjamini_hochberg(p_values, level)
    raise ValueError(f"unknown multiple-comparison correction {method!r}")


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def t_quantile(p: float, df: int) -> float:
    # scipy.special, not scipy.stats: same Student-t quantile, a tenth of the import time
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


# kept for callers of the old name
_t_quantile = t_quantile
