"""`rea tick` on the real single-node Slurm cluster (scripts/slurm-up.sh): a campaign whose wake-up
job was scancelled stalls RUNNING with no job left in squeue; one tick resumes it (from the login
node, with sbatch/squeue/sacct) and it then reaches AWAITING_REVIEW by itself."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from rea_cli.executor.scheduler import campaign_job_prefix, workspace_tag
from tests.conftest import make_workspace, run_rea, start_campaign, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SLURM_SETTINGS = """
[slurm]
gpus_per_trial = 1
cpus_per_trial = 1
mem_gb = 1
time_limit_min = 10
array_parallelism = 2

[planner]
# as small as the engine allows: one hypothesis screened, one search point per batch, one
# batch without progress ends the search, the five-seed confirmation is the minimum
max_hypotheses = 1
validation_seeds = 2
exploitation_batch = 1
stall_batches = 1
search_rounds = 1
confirmation_seeds = 5
"""


def _doc(ws: Path, cid: str) -> dict:
    return json.loads((ws / "campaigns" / cid / "campaign.json").read_text())


def _queued(name_prefix: str) -> list[str]:
    """Job ids still in squeue (pending or running) whose name starts with name_prefix."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i|%j|%T"], capture_output=True, text=True, check=True
    )
    rows = [line.split("|") for line in out.stdout.splitlines() if line.count("|") == 2]
    return [r[0] for r in rows if r[1].startswith(name_prefix)]


def test_tick_recovers_a_scancelled_wakeup_on_slurm(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", backend="slurm", extra=SLURM_SETTINGS)
    cid = f"wd{int(time.time()) % 100000}"
    prefix = campaign_job_prefix(workspace_tag(ws.resolve()), cid)
    start_campaign(ws, cid)
    try:
        doc = _doc(ws, cid)
        wakeup = doc["phases"][doc["phase"]]["rounds"][-1]["wakeup_job_id"]
        assert wakeup in _queued(prefix)
        subprocess.run(["scancel", wakeup], check=True)

        # trials end, no wake-up follows: nothing of the campaign is left in the queue
        wait_for(lambda: not _queued(prefix), 400, "every job of the campaign to leave squeue")
        stuck = _doc(ws, cid)
        assert stuck["state"] == "RUNNING"
        assert stuck["phases"][stuck["phase"]]["rounds"][-1]["wakeup_job_id"] == wakeup

        tick = run_rea(ws, "tick", "--json", timeout=300)
        assert tick.returncode == 0, tick.stderr
        (entry,) = json.loads(tick.stdout)["campaigns"]
        assert entry["action"] == "resumed", entry
        assert f"wake-up {wakeup}" in entry["reason"]

        # healthy again: a second tick has nothing to do
        again = run_rea(ws, "tick", "--json", timeout=300)
        (entry,) = json.loads(again.stdout)["campaigns"]
        assert entry["action"] in ("none", "skipped-busy") or entry["state"] != "RUNNING", entry

        wait_for(lambda: _doc(ws, cid)["state"] != "RUNNING", 900, "the campaign to end")
        done = _doc(ws, cid)
        assert done["state"] == "AWAITING_REVIEW", done.get("pause_reason")
        assert done["proposal"] is not None
        wait_for(lambda: not _queued(prefix), 60, "the last wake-up to leave squeue")
    finally:
        if _doc(ws, cid)["state"] in ("RUNNING", "PAUSED"):
            run_rea(ws, "cancel", cid)
