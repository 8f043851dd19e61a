"""The cost model: expected and worst-case device-hours of a trial. Pure functions.

The expected time is samples to process / a per-family throughput measured on one device, plus a
fixed start-up (interpreter, data load). The time limit given to the scheduler is a multiple of
that expectation, capped by the workspace setting: it is what the budget reserves.
"""

from __future__ import annotations

import math
from typing import Any

# samples/s of one training process on one device (measured order of magnitude on 2 CPU cores)
_THROUGHPUT = {
    "lr": 400_000,
    "fm": 250_000,
    "wide_deep": 120_000,
    "deepfm": 100_000,
    "dcn_v2": 80_000,
    "dlrm": 100_000,
    "finalmlp": 70_000,
}
_STARTUP_S = 15.0
_SAFETY = 3.0  # time limit = safety x expected time (+ start-up margin)
_ROWS = {"movielens-100k": 100_000}


def dataset_rows(data: dict[str, Any]) -> int:
    if data["name"] == "synthetic":
        return int(data.get("n_rows", 20_000))
    return _ROWS.get(data["name"], 1_000_000)


def trial_hours(baseline: dict[str, Any], data: dict[str, Any], fidelity: dict[str, Any]) -> float:
    """Expected hours of one trial of `baseline` at `fidelity` (a delta on train settings)."""
    train = baseline["train"]
    epochs = fidelity.get("train.epochs", train["epochs"])
    fraction = fidelity.get("train.data_fraction", train.get("data_fraction", 1.0))
    samples = dataset_rows(data) * 0.8 * fraction * epochs
    seconds = _STARTUP_S + samples / _THROUGHPUT.get(baseline["model"]["family"], 50_000)
    return seconds / 3600.0


def time_limit_min(expected_hours: float, *, cap: int) -> int:
    """Scheduler time limit in whole minutes: a safety multiple of the expectation, <= cap."""
    return max(1, min(cap, math.ceil(expected_hours * 60 * _SAFETY) + 1))
