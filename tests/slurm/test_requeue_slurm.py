"""Preemption on the real cluster: a trial requeued after its first epoch resumes from its
checkpoint, and counts as one trial with two attempts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from rea_cli.executor.scheduler import campaign_job_prefix, workspace_tag
from rea_cli.planner.engine.common import lineage
from tests.conftest import make_workspace, run_rea, start_campaign, wait_for

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
validation_seeds = 2
exploitation_batch = 1
stall_batches = 1
search_rounds = 1
confirmation_seeds = 5
"""


def _scontrol(*args: str) -> None:
    subprocess.run(["scontrol", *args], check=True, capture_output=True, text=True)


def _job_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


def _valid_epochs(metrics: Path) -> list[int]:
    events = [json.loads(line) for line in metrics.read_text().splitlines()]
    return [e["epoch"] for e in events if e["event"] == "eval" and e["split"] == "valid"]


def _queued(name_prefix: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i|%j"], capture_output=True, text=True)
    rows = [line.split("|") for line in out.stdout.splitlines() if line.count("|") == 1]
    return [r[0] for r in rows if r[1].startswith(name_prefix)]


def test_requeued_trial_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", backend="slurm", extra=SETTINGS)
    cid = f"rq{int(time.time()) % 100000}"
    # the standard profile: 3 epochs of seconds each on 200k rows (the demo profile's take
    # about half a second: the trial may end before the test reaches it)
    start_campaign(ws, cid, profile="standard", launch=False)
    camp = ws / "campaigns" / cid

    def doc() -> dict:
        return json.loads((camp / "campaign.json").read_text())

    tid = "validation-baseline-s0"  # the probe's first trial, at full fidelity
    checkpoint = camp / "checkpoints" / lineage("baseline", 0) / "checkpoint.pt"
    # `rea launch` goes on publishing after the trial has started: watch from the start
    launched: list[subprocess.CompletedProcess[str]] = []
    launcher = threading.Thread(target=lambda: launched.append(run_rea(ws, "launch", cid)))
    launcher.start()
    try:
        # the checkpoint is written after the epoch's eval: preempt once it exists. Slurm
        # signals only the task's own process (submitit's), not the trainer it runs, which it
        # kills after KillWait (seconds later, a whole epoch on this machine): freeze the
        # trainer first, so that the preemption lands where the test says, between epochs
        wait_for(checkpoint.exists, 300, "the first epoch's checkpoint", step=0.05)
        first = camp / "trials" / tid / "attempts" / "1"
        os.kill(json.loads((first / "attempt.json").read_text())["pid"], signal.SIGSTOP)
        job = doc()["trials"][tid]["jobs"][0]["job_id"]
        _scontrol("requeue", job)  # what a preemption with requeue does
    finally:
        launcher.join()
    assert launched[0].returncode == 0, launched[0].stderr
    spec = json.loads((camp / "trials" / tid / "spec.json").read_text())
    assert Path(spec["checkpoint_dir"]) == checkpoint.parent
    first_evals = _valid_epochs(first / "metrics.jsonl")
    wait_for(lambda: _job_state(job) == "PENDING", 60, "the requeued task to be pending")
    _scontrol("update", f"jobid={job}", "StartTime=now")

    # the probe's wake-up records the trial and submits the next round
    wait_for(
        lambda: doc()["state"] != "RUNNING" or len(doc()["phases"]["validation"]["rounds"]) >= 2,
        600,
        "the probe round to be recorded",
    )
    done = doc()
    try:
        assert done["state"] == "RUNNING", done.get("pause_reason")
        assert done["phases"]["validation"]["rounds"][0]["kind"] == "probe"
        trial = done["trials"][tid]
        assert trial["status"] == "succeeded"
        assert len(trial["jobs"]) == 1 and trial["jobs"][0]["restarts"] >= 1  # one trial, one job
        assert trial["jobs"][0]["job_id"] == job
        assert trial["attempts"] == 2  # ... two attempts
        second = json.loads((camp / "trials" / tid / "attempts" / "2" / "result.json").read_text())
        assert second["status"] == "succeeded"
        # did not start over, did train again, lost no epoch: resumed between epochs
        assert 1 <= second["resumed_from_epoch"] <= len(first_evals) < 3, first_evals
        assert second["epochs_completed"] == 3
        assert not (first / "result.json").exists()  # the first attempt was killed
        resumed = _valid_epochs(camp / "trials" / tid / "attempts" / "2" / "metrics.jsonl")
        assert resumed == list(range(second["resumed_from_epoch"], 3))
    finally:
        # the requeued trial is checked: the rest of the campaign would only repeat what
        # test_campaign_slurm covers, so cancel it instead of waiting for its end
        cancel = run_rea(ws, "cancel", cid)
    assert cancel.returncode == 0, cancel.stderr
    prefix = campaign_job_prefix(workspace_tag(ws.resolve()), cid)
    wait_for(lambda: not _queued(prefix), 60, "squeue to drop the campaign's jobs")
    assert doc()["state"] == "CANCELLED"
    assert doc()["budget"]["reserved_gpu_hours"] == 0
