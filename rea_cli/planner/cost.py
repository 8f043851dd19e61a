"""The cost model: expected device seconds of a trial, and the time limit that bounds it.

Expected seconds = samples to train x seconds per sample. Seconds per sample is learned: from the
trainer's own measurements (result.json device_time_s / samples_seen) of earlier trials on the
same model family and data (the workspace's history, then this campaign's own trials as they
end); before any measurement, from a per-family prior (orders of magnitude measured on 2 CPU
cores; see docs/campaigns.md). The scheduler's time limit is a safety multiple of the
expectation plus the start-up; it is what the budget reserves, so the better the estimate,
the less budget sits idle in reservations.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

# training samples per second of one process on one device (the evaluation each epoch is
# folded in); a prior, replaced by measurements as soon as there are any
_PRIOR_SAMPLES_PER_S = {
    "lr": 400_000,
    "fm": 200_000,
    "wide_deep": 90_000,
    "deepfm": 80_000,
    "dcn_v2": 60_000,
    "dlrm": 80_000,
    "finalmlp": 50_000,
}
SAFETY_PRIOR = 3.0  # time limit = safety x expected, while the rate is only a prior
SAFETY_MEASURED = 2.0  # ... once it is measured on this data


@dataclass(frozen=True)
class LimitPolicy:
    """How a backend turns an expectation into a limit: its start-up allowance (process start,
    imports, data loading) and its smallest and largest limits, in minutes."""

    startup_s: float
    floor_min: float
    cap_min: float


@dataclass(frozen=True)
class CostModel:
    seconds_per_sample: float
    source: Literal["prior", "history", "measured"]
    n: int = 0  # measurements behind it

    @property
    def safety(self) -> float:
        return SAFETY_PRIOR if self.source == "prior" else SAFETY_MEASURED


def prior(family: str) -> CostModel:
    return CostModel(1.0 / _PRIOR_SAMPLES_PER_S.get(family, 50_000), "prior")


def learned(
    family: str,
    measurements: Iterable[tuple[float, int]],
    source: Literal["history", "measured"] = "measured",
) -> CostModel:
    """From (device_time_s, samples_seen) pairs: the median rate; the prior without any."""
    rates = [t / n for t, n in measurements if n > 0 and t > 0 and math.isfinite(t)]
    if not rates:
        return prior(family)
    return CostModel(statistics.median(rates), source, len(rates))


def trial_seconds(
    cost: CostModel,
    n_train: int,
    epochs: float,
    data_fraction: float = 1.0,
    multiplier: float = 1.0,
) -> float:
    """Expected device seconds of one trial (training + its evaluations)."""
    return cost.seconds_per_sample * n_train * data_fraction * epochs * multiplier


def time_limit_min(expected_s: float, cost: CostModel, policy: LimitPolicy) -> float:
    """The scheduler's limit for a task expected to take `expected_s` on its device."""
    limit = (cost.safety * expected_s + policy.startup_s) / 60.0
    return round(min(policy.cap_min, max(policy.floor_min, limit)), 3)
