"""Recurring campaigns when things go wrong: a tick killed right after recording a run, and a
run that cannot be planned."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.conftest import campaign_doc, run_rea

pytestmark = pytest.mark.slow
NOW = {"REA_NOW": "2026-12-01T00:00:00Z"}


def _schedule(ws: Path, run_budget: str) -> None:
    added = run_rea(
        ws, "schedule", "add", "w", "--model", "dcn_v2", "--dataset", "synthetic",
        "--profile", "tiny", "--every", "7d",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    approved = run_rea(
        ws, "schedule", "approve", "w", "--run-budget", run_budget, "--period-budget",
        "10gpu-h", "--valid-until", "2099-01-01", "--yes", env=NOW,
    )  # fmt: skip
    assert approved.returncode == 0, approved.stderr


def test_a_tick_killed_after_recording_a_run_is_finished_by_the_next(workspace: Path) -> None:
    _schedule(workspace, "4gpu-h")
    killed = run_rea(
        workspace, "tick", "--now", "2026-12-01T00:05", env={"REA_CRASH_AT": "schedule_recorded"}
    )
    assert killed.returncode == -signal.SIGKILL
    state = json.loads((workspace / "schedules" / "w" / "state.json").read_text())
    (run,) = state["runs"]
    assert run["campaign_id"] == "w-202612010000"
    assert not (workspace / "campaigns" / "w-202612010000").exists()

    done = run_rea(workspace, "tick", "--now", "2026-12-01T00:10", "--json")
    assert done.returncode == 0, done.stderr
    (tick,) = json.loads(done.stdout)["schedules"]
    assert tick["action"] == "started" and tick["campaign_id"] == "w-202612010000"
    assert "finished starting run w-202612010000" in tick["reason"]
    assert campaign_doc(workspace, "w-202612010000")["state"] == "RUNNING"
    state = json.loads((workspace / "schedules" / "w" / "state.json").read_text())
    assert len(state["runs"]) == 1  # not started twice
    assert run_rea(workspace, "cancel", "w-202612010000").returncode == 0
    after = run_rea(workspace, "tick", "--now", "2026-12-01T01:00", "--json")
    (tick,) = json.loads(after.stdout)["schedules"]
    assert tick["action"] == "none" and "2026-12-08" in tick["reason"]


def test_a_run_that_cannot_be_planned_says_why_at_every_tick(workspace: Path) -> None:
    _schedule(workspace, "0.0001gpu-h")
    for now in ("2026-12-01T00:05", "2026-12-01T00:10"):
        done = run_rea(workspace, "tick", "--now", now)
        assert done.returncode == 1  # a schedule that could not be checked: exit 1, like a campaign
        assert "stuck: schedule w: the budget is too small" in done.stdout, done.stdout
    assert not (workspace / "campaigns" / "w-202612010000").exists()
