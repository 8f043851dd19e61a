"""A recurring campaign on the real local Slurm cluster: `rea tick` at test-supplied times starts
two runs (trials and wake-ups are Slurm jobs), the second planned from the first's history."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY_SETTINGS, make_workspace
from tests.schedule_flow import run_weekly_twice

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SETTINGS = (
    TINY_SETTINGS
    + """
[slurm]
gpus_per_trial = 1
cpus_per_trial = 1
mem_gb = 2
time_limit_min = 10
array_parallelism = 2
"""
)


def test_recurring_campaign_runs_twice_from_tick_on_slurm(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", backend="slurm", extra=SETTINGS)
    run_weekly_twice(ws, timeout=900)
