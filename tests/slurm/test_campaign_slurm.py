"""A full campaign on the real single-node Slurm cluster (scripts/slurm-up.sh).

Arrays request GPUs, one trial fails on purpose (an absurd learning rate: the trainer reports
divergence), the campaign wakes up at least twice by itself and reaches AWAITING_REVIEW with the
right rows in DuckDB. While trials run, no rea process is alive: only Slurm jobs.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from rea_cli.executor.scheduler import campaign_job_prefix, workspace_tag
from tests.conftest import (
    make_workspace,
    processes_mentioning,
    run_rea,
    start_campaign,
    wait_for,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SLURM_SETTINGS = """
[slurm]
gpus_per_trial = 1
cpus_per_trial = 1
mem_gb = 2
time_limit_min = 10
array_parallelism = 2

[planner]
max_hypotheses = 3
# let every hypothesis that trained pass validation, so all three phases run
validation_min_gain = -1.0
validation_seeds = 1
combination_top_k = 2
combination_seeds = 1
exploitation_seeds = 2
"""

FAILING_HYPOTHESIS = """
[[hypothesis]]
id = "lr_absurd"
title = "Absurd dense learning rate (fails on purpose)"
rationale = "Planted by the test: the trainer must report divergence."
delta = { "train.lr_dense" = 1e6, "train.lr_sparse" = 1e6 }
prior = 1.0
"""


def _doc(ws: Path, cid: str) -> dict:
    return json.loads((ws / "campaigns" / cid / "campaign.json").read_text())


def _squeue(name_prefix: str) -> list[tuple[str, str, str]]:
    out = subprocess.run(["squeue", "-h", "-o", "%i|%j|%T"], capture_output=True, text=True)
    rows = [tuple(line.split("|")) for line in out.stdout.splitlines() if "|" in line]
    return [r for r in rows if r[1].startswith(name_prefix)]  # type: ignore[misc]


def _prefix(ws: Path, cid: str) -> str:
    """The campaign's job-name prefix, as the CLI (which resolves the workspace) builds it."""
    return campaign_job_prefix(workspace_tag(ws.resolve()), cid)


def _rea_processes(ws: Path) -> list[str]:
    return [cmd for _, cmd in processes_mentioning(str(ws)) if "rea_cli" in cmd and "resume" in cmd]


@pytest.fixture
def slurm_ws(tmp_path: Path) -> Path:
    ws = make_workspace(tmp_path / "ws", backend="slurm", extra=SLURM_SETTINGS)
    (ws / "hypotheses.toml").write_text(FAILING_HYPOTHESIS)
    return ws


def test_campaign_on_slurm_with_a_failing_trial(slurm_ws: Path) -> None:
    ws, cid = slurm_ws, f"sl{int(time.time()) % 100000}"
    start_campaign(ws, cid, launch=False)
    dry = run_rea(ws, "launch", cid, "--dry-run")
    assert dry.returncode == 0 and "--gres=gpu:1" in dry.stdout, dry.stderr
    assert "ranking_models.train" in dry.stdout and "resume" in dry.stdout
    assert not _squeue(_prefix(ws, cid)), "the dry run submitted something"
    launch = run_rea(ws, "launch", cid)
    assert launch.returncode == 0, launch.stderr
    assert not _rea_processes(ws)

    checked_between = 0
    seen_phases: set[str] = set()
    deadline = time.monotonic() + 540
    while time.monotonic() < deadline:
        doc = _doc(ws, cid)
        if doc["state"] != "RUNNING":
            break
        seen_phases.add(doc["phase"])
        jobs = _squeue(_prefix(ws, cid))
        trials_running = [j for j in jobs if not j[1].endswith(".wake") and j[2] == "RUNNING"]
        wake_waiting = [j for j in jobs if j[1].endswith(".wake") and j[2] == "PENDING"]
        if trials_running and wake_waiting:
            # between wake-ups: trials run under Slurm and, once the resume that submitted them
            # has finished publishing (a second or so), no rea process anywhere
            wait_for(lambda: not _rea_processes(ws), 15, "the resume step to exit")
            if any(
                j[2] == "RUNNING" for j in _squeue(_prefix(ws, cid)) if not j[1].endswith(".wake")
            ):
                assert not _rea_processes(ws), _rea_processes(ws)
                checked_between += 1
        time.sleep(1.0)
    doc = _doc(ws, cid)
    assert doc["state"] == "AWAITING_REVIEW", doc.get("pause_reason")
    assert checked_between > 0
    assert {"validation", "exploitation"} <= seen_phases

    # at least two wake-ups ran (one per ended phase), each chained after its array
    events = [
        json.loads(x) for x in (ws / "campaigns" / cid / "journal.jsonl").read_text().splitlines()
    ]
    assert sum(e["event"] == "resume_done" for e in events) >= 2
    submitted = [e for e in events if e["event"] == "phase_submitted"]
    assert len({e["wakeup_job_id"] for e in submitted}) == len(submitted) >= 2

    # the planted failure was diagnosed as divergence and given up, not retried
    failed = doc["trials"]["validation-lr_absurd-s0"]
    assert failed["status"] == "failed"
    assert failed["jobs"][-1]["failure_kind"] in ("nan_loss", "loss_explosion", "grad_explosion")
    assert failed["jobs"][-1]["action"] == "give_up" and len(failed["jobs"]) == 1
    ok = [t for t in doc["trials"].values() if t["status"] == "succeeded"]
    assert len(ok) == len(doc["trials"]) - 1
    # GPUs were requested and accounted: spent = elapsed x GPUs
    assert all(t["jobs"][-1]["gpus"] == 1 for t in doc["trials"].values())
    assert doc["budget"]["spent_gpu_hours"] > 0

    wait_for(lambda: not _squeue(_prefix(ws, cid)), 60, "the last wake-up to leave squeue")
    con = duckdb.connect(str(ws / "insights-analyst.duckdb"), read_only=True)
    try:
        n = con.execute(f"SELECT count(*) FROM trials WHERE campaign_id='{cid}'").fetchone()[0]
        n_fail = con.execute(f"SELECT count(*) FROM failures WHERE campaign_id='{cid}'").fetchone()[
            0
        ]
    finally:
        con.close()
    assert n == len(doc["trials"])
    assert n_fail >= 1


def test_cancel_leaves_no_job_in_squeue(slurm_ws: Path) -> None:
    ws, cid = slurm_ws, f"sc{int(time.time()) % 100000}"
    start_campaign(ws, cid)
    assert _squeue(_prefix(ws, cid))
    done = run_rea(ws, "cancel", cid)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: not _squeue(_prefix(ws, cid)), 60, "squeue to drop the campaign's jobs")
    doc = _doc(ws, cid)
    assert doc["state"] == "CANCELLED"
    assert doc["budget"]["reserved_gpu_hours"] == 0
    assert all(t["status"] in ("cancelled", "succeeded", "failed") for t in doc["trials"].values())


def test_unknown_partition_refused_before_anything_is_written(slurm_ws: Path) -> None:
    ws, cid = slurm_ws, f"sp{int(time.time()) % 100000}"
    start_campaign(ws, cid, launch=False)
    config = ws / "rea.toml"
    config.write_text(config.read_text().replace("[slurm]\n", '[slurm]\npartition = "nosuch"\n', 1))
    done = run_rea(ws, "launch", cid)
    assert done.returncode == 2
    assert "unknown Slurm partition 'nosuch'" in done.stderr and "Traceback" not in done.stderr
    doc = _doc(ws, cid)
    assert doc["state"] == "APPROVED" and not doc["trials"]
    assert not _squeue(_prefix(ws, cid))
