"""Compute accounting in trial-equivalents, and selection by valid at a budget. Pure.

- One trial-equivalent (TE) is the trainer's own device seconds of ONE full-fidelity baseline
  trial, measured in the same run. On a shared machine the same trial's device time varies
  with other users' load (the MovieLens-100k baseline: 3.9 to 35 s within minutes on the
  project's 2-core box), so the unit is read from a :class:`Clock`: every
  full-fidelity baseline run of the benchmark (the search seeds' first trials, the baseline's
  retrains, periodic clock runs during the searches, the probe trials before each rea campaign
  and after the last) is a reading at its midpoint in time; the unit between readings is
  interpolated linearly, and a trial's unit is its mean over the trial's own span. The same
  rule for every method; ``te_seconds`` reports the median of all readings.
- A trial's TE is its device_time_s / its unit (failed trials count what they ran).
- A search's result at budget N is the best-by-valid config among its trials whose cumulative
  TE, in order of completion, is <= N (a prefix): one search run gives every budget.
- Sample-equivalents (samples trained / the baseline trial's) and start overhead (seconds from
  a trial's start to its first timed work) are reported beside, never used to compare.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# the benchmark metric: test NE gain, lower NE is better
METRIC = "ne"
EPS = 1e-9


class RunResult(BaseModel):
    """What one training run reported (in-process trainer or a trial's result.json)."""

    model_config = ConfigDict(frozen=True)

    status: Literal["succeeded", "failed"]
    failure: str | None = None  # "kind: message" when failed
    valid: dict[str, float] = Field(default_factory=dict)
    test: dict[str, float] = Field(default_factory=dict)
    device_time_s: float = 0.0
    startup_s: float | None = None
    samples_seen: int = 0
    epochs_completed: int = 0
    best_epoch: int | None = None
    started_at: float | None = None  # epoch seconds (time.time()) when the run started
    ended_at: float | None = None  # epoch seconds when it ended

    def metric(self, split: Literal["valid", "test"], name: str = METRIC) -> float | None:
        """The finite metric of a succeeded run, else None (a failed run has no score)."""
        if self.status != "succeeded":
            return None
        value = (self.valid if split == "valid" else self.test).get(name)
        return float(value) if value is not None and math.isfinite(value) else None


class TrialRecord(BaseModel):
    """One trial of a search, in its order of completion, with its compute."""

    method: str
    search_seed: int
    index: int
    seed: int
    config: dict[str, Any]
    params: dict[str, Any] = Field(default_factory=dict)
    result: RunResult
    te: float = 0.0
    cum_te: float = 0.0

    @property
    def valid_score(self) -> float | None:
        return self.result.metric("valid")


class Usage(BaseModel):
    """Compute of a prefix of trials."""

    te: float
    sample_eq: float
    start_overhead_s: float
    n_trials: int
    n_failed: int


def te_unit(baseline_device_s: Sequence[float]) -> float:
    """Device seconds of one trial-equivalent: the median of the baseline runs."""
    values = [v for v in baseline_device_s if math.isfinite(v) and v > 0]
    if not values:
        raise ValueError("no baseline run measured a positive device time: no TE unit")
    return float(statistics.median(values))


class Clock(BaseModel):
    """Readings (time, device seconds) of full-fidelity baseline runs over the benchmark."""

    readings: list[tuple[float, float]] = Field(default_factory=list)

    def add(self, run: RunResult) -> None:
        """A succeeded baseline run as a reading at its midpoint (its end if its start is
        unknown); runs without an end time or a positive device time are no readings."""
        if run.status != "succeeded" or run.ended_at is None:
            return
        if not (math.isfinite(run.device_time_s) and run.device_time_s > 0):
            return
        mid = run.ended_at if run.started_at is None else (run.started_at + run.ended_at) / 2
        self.readings.append((mid, run.device_time_s))
        self.readings.sort()

    def at(self, t: float) -> float:
        """The unit at time t: linear between readings, the nearest reading outside them."""
        if not self.readings:
            raise ValueError("no baseline run measured a positive device time: no TE unit")
        times = [r[0] for r in self.readings]
        i = bisect.bisect_left(times, t)
        if i == 0:
            return self.readings[0][1]
        if i == len(times):
            return self.readings[-1][1]
        (t0, u0), (t1, u1) = self.readings[i - 1], self.readings[i]
        return u0 if t1 == t0 else u0 + (u1 - u0) * (t - t0) / (t1 - t0)

    def unit_for(self, run: RunResult) -> float:
        """A run's unit: the mean of the interpolated unit over its span (at its end when its
        start is unknown; the median of all readings when both are)."""
        if run.ended_at is None:
            return self.median()
        start = run.ended_at if run.started_at is None else min(run.started_at, run.ended_at)
        points = [start + (run.ended_at - start) * k / 32 for k in range(33)]
        return statistics.fmean(self.at(p) for p in points)

    def median(self) -> float:
        return te_unit([d for _, d in self.readings])


def with_compute(trials: Sequence[TrialRecord], unit: float | Clock) -> list[TrialRecord]:
    """The trials in order with te and cum_te filled in (unit: seconds or a Clock)."""
    out, cum = [], 0.0
    for t in trials:
        unit_s = unit.unit_for(t.result) if isinstance(unit, Clock) else unit
        te = t.result.device_time_s / unit_s
        cum += te
        out.append(t.model_copy(update={"te": te, "cum_te": cum}))
    return out


def prefix(trials: Sequence[TrialRecord], budget_te: float) -> list[TrialRecord]:
    """The trials completed before the cumulative compute passed budget_te."""
    out = []
    for t in trials:
        if t.cum_te > budget_te + EPS:
            break
        out.append(t)
    return out


def best_at(trials: Sequence[TrialRecord], te: float) -> TrialRecord | None:
    """The best-by-valid succeeded trial within te trial-equivalents (ties: the earliest);
    None when no trial fits or none succeeded."""
    best: TrialRecord | None = None
    for t in prefix(trials, te):
        score = t.valid_score
        if score is None:
            continue
        if best is None or score < (best.valid_score or math.inf):
            best = t
    return best


def usage(trials: Sequence[TrialRecord], baseline_samples: int) -> Usage:
    """Compute of these trials: TE, sample-equivalents, start overhead, counts."""
    return Usage(
        te=sum(t.te for t in trials),
        sample_eq=sum(t.result.samples_seen for t in trials) / max(baseline_samples, 1),
        start_overhead_s=sum(t.result.startup_s or 0.0 for t in trials),
        n_trials=len(trials),
        n_failed=sum(t.result.status != "succeeded" for t in trials),
    )


def done(trials: Sequence[TrialRecord], max_budget_te: float) -> bool:
    """A search stops once its cumulative compute reaches the largest budget."""
    return bool(trials) and trials[-1].cum_te >= max_budget_te - EPS
