"""Preemption on the real cluster: a trial requeued after its first epoch resumes from its
checkpoint, and counts as one trial with two attempts."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import make_workspace, start_campaign, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SETTINGS = """
[slurm]
gpus_per_trial = 1
cpus_per_trial = 1
mem_gb = 2
time_limit_min = 10
array_parallelism = 1

[planner]
max_hypotheses = 1
validation_seeds = 1
validation_epochs = 3
validation_data_fraction = 1.0
validation_min_gain = 1.0
"""


def _scontrol(*args: str) -> None:
    subprocess.run(["scontrol", *args], check=True, capture_output=True, text=True)


def _job_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


def test_requeued_trial_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", backend="slurm", extra=SETTINGS)
    cid = f"rq{int(time.time()) % 100000}"
    start_campaign(ws, cid, profile="demo")
    camp = ws / "campaigns" / cid
    doc = json.loads((camp / "campaign.json").read_text())
    tid = "validation-baseline-s0"
    job = doc["trials"][tid]["jobs"][0]["job_id"]
    metrics = camp / "trials" / tid / "attempts" / "1" / "metrics.jsonl"

    def first_epoch_done() -> bool:
        return metrics.exists() and '"event": "eval"' in metrics.read_text()

    wait_for(first_epoch_done, 300, "the first epoch's checkpoint")
    _scontrol("requeue", job)  # what a preemption with requeue does
    wait_for(lambda: _job_state(job) == "PENDING", 60, "the requeued task to be pending")
    _scontrol("update", f"jobid={job}", "StartTime=now")

    wait_for(
        lambda: json.loads((camp / "campaign.json").read_text())["state"] != "RUNNING",
        600,
        "the campaign to end",
    )
    doc = json.loads((camp / "campaign.json").read_text())
    assert doc["state"] == "AWAITING_REVIEW", doc.get("pause_reason")
    trial = doc["trials"][tid]
    assert trial["status"] == "succeeded"
    assert len(trial["jobs"]) == 1 and trial["jobs"][0]["restarts"] >= 1  # one trial, one job
    assert trial["attempts"] == 2  # ... two attempts
    second = json.loads((camp / "trials" / tid / "attempts" / "2" / "result.json").read_text())
    assert second["status"] == "succeeded"
    assert second["resumed_from_epoch"] >= 1  # did not start over
    assert second["epochs_completed"] == 3
