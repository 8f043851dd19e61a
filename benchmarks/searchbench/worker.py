"""Training runs in a pool of worker processes: the real in-process Trainer on the processed split.

Each worker loads the data once (per feature-processing section) and runs trials one at a time.
Device time is the trainer's own figure (TrainOutcome.device_time_s, or trainer.device_time for
a run that failed part-way), the same clock that writes result.json for rea's trials.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import time
from typing import Any

from benchmarks.searchbench.accounting import METRIC, RunResult

_DATA: dict[str, Any] = {}
_SPEC: dict[str, Any] = {}


def torch_threads(workers: int) -> int:
    """Threads per worker so the workers together use the usable CPUs once."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // max(1, workers))


def init_worker(spec: dict[str, Any], threads: int) -> None:
    """Pool initializer: torch threads, then the base data loaded once."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported
    import torch

    torch.set_num_threads(threads)
    _SPEC.clear()
    _SPEC.update(spec)
    _DATA.clear()
    _data({})


def _data(features: dict[str, Any]) -> Any:
    """The processed data for a config's ``features`` section (cached in this worker)."""
    from ranking_models.config import FeatureConfig
    from ranking_models.data.processing import load_data

    section = FeatureConfig.model_validate(features or {})
    key = json.dumps(section.model_dump(mode="json"), sort_keys=True)
    if key not in _DATA:
        _DATA[key] = load_data(_SPEC, features=section)
    return _DATA[key]


def run(config: dict[str, Any], seed: int) -> RunResult:
    """Train one config on one seed; never raises for a failed trial (status "failed")."""
    from ranking_models.config import validate_config
    from ranking_models.trainer import Trainer, TrialFailure

    started, started_at = time.monotonic(), time.time()
    trainer: Trainer | None = None
    try:
        cfg = validate_config(config)
        data = _data(cfg.features.model_dump(mode="json"))
        trainer = Trainer(cfg, data, seed)
        outcome = trainer.run()
    except Exception as exc:  # any failure of a run is a failure of its config, reported
        kind = exc.kind if isinstance(exc, TrialFailure) else type(exc).__name__
        message = exc.message if isinstance(exc, TrialFailure) else _first_line(exc)
        return RunResult(
            status="failed",
            failure=f"{kind}: {message}",
            device_time_s=trainer.device_time if trainer else 0.0,
            startup_s=_startup(trainer, started),
            samples_seen=trainer.train_samples if trainer else 0,
            epochs_completed=trainer.epoch if trainer else 0,
            best_epoch=trainer.best_epoch if trainer else None,
            valid=(trainer.best_valid or {}) if trainer else {},
            started_at=started_at,
            ended_at=time.time(),
        )
    result = RunResult(
        status="succeeded",
        valid=outcome.valid,
        test=outcome.test,
        device_time_s=outcome.device_time_s,
        startup_s=_startup(trainer, started),
        samples_seen=outcome.samples_seen,
        epochs_completed=outcome.epochs_completed,
        best_epoch=outcome.best_epoch,
        started_at=started_at,
        ended_at=time.time(),
    )
    if result.metric("valid") is None or result.metric("test") is None:
        bad = f"valid {outcome.valid.get(METRIC)}, test {outcome.test.get(METRIC)}"
        return result.model_copy(
            update={"status": "failed", "failure": f"non_finite: {METRIC} {bad}"}
        )
    return result


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""


def _startup(trainer: Any, started: float) -> float | None:
    """In-process start overhead: from the task's start to the trainer's first timed work."""
    if trainer is None or trainer.work_started is None:
        return None
    return max(0.0, trainer.work_started - started)


def config_key(config: dict[str, Any], seed: int) -> str:
    return json.dumps({"config": config, "seed": seed}, sort_keys=True)


class TrainingPool:
    """``workers`` processes running :func:`run`; equal (config, seed) runs are trained once."""

    def __init__(self, spec: dict[str, Any], workers: int) -> None:
        self.workers = workers
        self.threads = torch_threads(workers)
        self.executor = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(spec, self.threads),
        )
        self.futures: dict[str, cf.Future[RunResult]] = {}

    def submit(self, config: dict[str, Any], seed: int) -> cf.Future[RunResult]:
        key = config_key(config, seed)
        if key not in self.futures:
            self.futures[key] = self.executor.submit(run, config, seed)
        return self.futures[key]

    def result(self, config: dict[str, Any], seed: int) -> RunResult:
        return self.submit(config, seed).result()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
