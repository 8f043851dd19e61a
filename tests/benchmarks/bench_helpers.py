"""Small real inputs for the benchmark tests: a BYO CSV data set and hand-made runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.searchbench.accounting import RunResult, TrialRecord


def write_tiny_byo(folder: Path, n_rows: int = 3000, seed: int = 0) -> Path:
    """A CSV with two categorical and one numerical column and a planted signal; its schema."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 20, n_rows), rng.integers(0, 30, n_rows)
    x = rng.standard_normal(n_rows)
    logit = 0.15 * a - 0.08 * b + 1.2 * np.sin(2 * x) - 0.5
    y = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"{a[i]},{b[i]},{x[i]:.5f},{y[i]}" for i in range(n_rows))
    (folder / "tiny.csv").write_text("a,b,x,y\n" + rows + "\n")
    schema = folder / "tiny.toml"
    schema.write_text(
        'data = "tiny.csv"\nlabel = "y"\ncategorical = ["a", "b"]\nnumerical = ["x"]\n'
    )
    return schema


def run(
    ne_valid: float | None,
    device_s: float = 1.0,
    ne_test: float | None = None,
    samples: int = 100,
    startup: float = 0.1,
) -> RunResult:
    """A succeeded run with these NEs, or a failed one when ne_valid is None."""
    if ne_valid is None:
        return RunResult(
            status="failed",
            failure="nan_loss: boom",
            device_time_s=device_s,
            samples_seen=samples,
            startup_s=startup,
        )
    test = ne_valid if ne_test is None else ne_test
    return RunResult(
        status="succeeded",
        valid={"ne": ne_valid},
        test={"ne": test},
        device_time_s=device_s,
        samples_seen=samples,
        startup_s=startup,
    )


def trial(
    index: int,
    result: RunResult,
    config: dict[str, Any] | None = None,
    method: str = "tpe",
    seed: int = 0,
) -> TrialRecord:
    return TrialRecord(
        method=method,
        search_seed=seed,
        index=index,
        seed=seed,
        config=config or {"model": {"family": "dcn_v2"}, "train": {"i": index}},
        result=result,
    )
