"""`rea schedule pause/resume/remove` through the real CLI, and the tick's refusal of a run whose
plan asks more than the standing approval's per-run budget. Times come from --now and REA_NOW;
nothing here trains: a tick that would start a run is killed right after recording it."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import campaign_doc, run_rea

pytestmark = pytest.mark.slow
NOW = {"REA_NOW": "2026-12-01T00:00:00Z"}  # the approval's time: the first run is due then
RUN1 = "w-202612010000"


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def _one_error(done: subprocess.CompletedProcess[str], code: int = 2) -> str:
    both = done.stdout + done.stderr
    assert "Traceback" not in both and "bug in rea" not in both, both
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert done.returncode == code, (done.returncode, lines[0])
    return lines[0]


def _schedule(ws: Path, run_budget: str = "4gpu-h") -> None:
    _ok(
        run_rea(
            ws, "schedule", "add", "w", "--model", "dcn_v2", "--dataset", "synthetic",
            "--profile", "tiny", "--every", "7d",
        )
    )  # fmt: skip
    _approve(ws, run_budget)


def _approve(ws: Path, run_budget: str) -> None:
    _ok(
        run_rea(
            ws, "schedule", "approve", "w", "--run-budget", run_budget, "--period-budget",
            "20gpu-h", "--valid-until", "2099-12-31", "--yes", env=NOW,
        )
    )  # fmt: skip


def _listed(ws: Path, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(
        _ok(run_rea(ws, "schedule", "list", "--json", env=env)).stdout
    )
    return rows


def _tick(ws: Path, now: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = run_rea(ws, "tick", "--now", now, "--json", env=env)
    (row,) = json.loads(done.stdout)["schedules"]
    return {"rc": done.returncode, **row}


def _runs(ws: Path) -> list[str]:
    state = json.loads((ws / "schedules" / "w" / "state.json").read_text())
    return [r["campaign_id"] for r in state["runs"]]


def _campaigns(ws: Path) -> list[str]:
    folder = ws / "campaigns"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_pause_resume_and_remove_a_schedule(workspace: Path) -> None:
    _schedule(workspace)
    paused = json.loads(_ok(run_rea(workspace, "schedule", "pause", "w", "--json")).stdout)
    assert paused == {"name": "w", "paused": True, "runs": []}
    (row,) = _listed(workspace, NOW)
    assert row["paused"] is True and row["note"].startswith("paused"), row
    assert "w (paused)" in _ok(run_rea(workspace, "schedule", "list")).stdout

    # due since the approval, but paused: the tick starts nothing and says why
    tick = _tick(workspace, "2026-12-01T00:05")
    assert tick["rc"] == 0 and tick["action"] == "none", tick
    assert "paused" in tick["reason"] and tick["campaign_id"] is None and not tick["stuck"]
    assert _runs(workspace) == [] and _campaigns(workspace) == []

    resumed = json.loads(_ok(run_rea(workspace, "schedule", "resume", "w", "--json")).stdout)
    assert resumed["paused"] is False
    (row,) = _listed(workspace, {"REA_NOW": "2026-12-01T00:05"})
    assert row["paused"] is False and row["note"] == "due at 2026-12-01T00:00:00+00:00", row
    # resumed, the next tick starts the due run (killed once it is recorded: nothing trains)
    killed = run_rea(
        workspace, "tick", "--now", "2026-12-01T00:05", env={"REA_CRASH_AT": "schedule_recorded"}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _runs(workspace) == [RUN1]

    removed = json.loads(_ok(run_rea(workspace, "schedule", "remove", "w", "--json")).stdout)
    assert removed == {"name": "w", "removed": True, "campaigns": [RUN1]}
    assert _listed(workspace) == []
    assert not (workspace / "schedules" / "w").exists()
    assert "no schedule" in _ok(run_rea(workspace, "schedule", "list")).stdout

    for cmd in ("remove", "pause", "resume"):  # gone: one line naming it, exit 2
        done = run_rea(workspace, "schedule", cmd, "w")
        line = _one_error(done)
        assert line == f"error: no schedule 'w' in {workspace}; see `rea schedule list`", line
        assert done.stdout == ""


def test_an_unknown_schedule_is_one_line_and_writes_nothing(workspace: Path) -> None:
    for cmd in ("remove", "pause", "resume"):
        line = _one_error(run_rea(workspace, "schedule", cmd, "nope"))
        assert "no schedule 'nope'" in line and "rea schedule list" in line
    assert not (workspace / "schedules").exists()


def test_a_damaged_schedule_is_refused_everywhere_but_can_be_removed(workspace: Path) -> None:
    _schedule(workspace)
    template = workspace / "schedules" / "w" / "template.json"
    template.write_text('{"name": "w", "model": "dcn_v2"')
    for args in (["list"], ["pause", "w"], ["resume", "w"]):
        line = _one_error(run_rea(workspace, "schedule", *args))
        assert str(template) in line and "`rea schedule remove w`" in line, line
    tick = _tick(workspace, "2026-12-01T00:05")
    assert tick["rc"] == 1 and tick["action"] == "error", tick
    assert "`rea schedule remove w`" in tick["reason"]
    # what every one of those errors says to do works
    _ok(run_rea(workspace, "schedule", "remove", "w"))
    assert _listed(workspace) == []


def test_a_run_planned_over_the_per_run_budget_is_refused_by_the_tick(workspace: Path) -> None:
    """A tick records a due run and plans it under an 8 GPU-h standing approval, then dies;
    the approval is lowered to 4 GPU-h per run. The next tick, finishing that run, must not
    approve its 8 GPU-h plan under the 4 GPU-h approval: it refuses, at every tick, saying what
    to do, and the campaign stays PLANNED (nothing approved, nothing launched)."""
    _schedule(workspace, run_budget="8gpu-h")
    killed = run_rea(
        workspace, "tick", "--now", "2026-12-01T00:05", env={"REA_CRASH_AT": "schedule_recorded"}
    )
    assert killed.returncode == -signal.SIGKILL
    assert _runs(workspace) == [RUN1] and _campaigns(workspace) == []
    # the plan that tick was making: what start_run plans (the template, the run budget)
    _ok(
        run_rea(
            workspace, "plan", "--model", "dcn_v2", "--dataset", "synthetic", "--profile",
            "tiny", "--budget", "8gpu-h", "--goal", "scheduled run of w", "--id", RUN1,
        )
    )  # fmt: skip
    assert campaign_doc(workspace, RUN1)["budget"]["approved_gpu_hours"] == 8.0
    _approve(workspace, "4gpu-h")

    for now in ("2026-12-01T00:10", "2026-12-01T00:15"):
        tick = _tick(workspace, now)
        assert tick["rc"] == 1 and tick["action"] == "error", tick
        assert tick["reason"].startswith(
            f"campaign {RUN1} asks 8 GPU-h, more than the standing approval's 4 per run; "
        ), tick["reason"]
        assert f"rea approve {RUN1}" in tick["reason"] and f"rea cancel {RUN1}" in tick["reason"]
        assert tick["stuck"] == [f"schedule w: {tick['reason']}"]
        doc = campaign_doc(workspace, RUN1)
        assert doc["state"] == "PLANNED", doc["state"]
        assert not (workspace / "campaigns" / RUN1 / "approval.json").exists()
    assert _runs(workspace) == [RUN1]  # still the one run, not a second
    shown = run_rea(workspace, "tick", "--now", "2026-12-01T00:20")
    assert shown.returncode == 1 and "Traceback" not in shown.stdout + shown.stderr
    assert f"stuck: schedule w: campaign {RUN1} asks 8 GPU-h" in shown.stdout, shown.stdout
