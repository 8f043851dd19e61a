"""Fixtures for the ranking_models tests (one torch thread, CPU, no job ids from the env)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test machines are small and shared: one thread each keeps timings sane.
    monkeypatch.setenv("REA_TORCH_THREADS", "1")
    monkeypatch.setenv("REA_DEVICE", "cpu")
    for var in ("REA_JOB_ID", "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(var, raising=False)
