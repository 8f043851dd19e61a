"""A recurring campaign on the local backend: two runs started by `rea tick` at test-supplied
times, the second planned from the first's history, within the standing budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.schedule_flow import run_weekly_twice

pytestmark = pytest.mark.slow


def test_recurring_campaign_runs_twice_from_tick(workspace: Path) -> None:
    run_weekly_twice(workspace, timeout=400)
