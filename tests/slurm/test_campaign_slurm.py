"""A full campaign on the real single-node Slurm cluster (scripts/slurm-up.sh).

Arrays request GPUs, a planted hypothesis fails on purpose on each of its seeds (an absurd
learning rate: the trainer reports divergence), the campaign wakes up once per round by itself
(probe, full-horizon validation, search batches, confirmation) and reaches AWAITING_REVIEW with
the right rows in DuckDB. While trials run, no rea process is alive: only Slurm jobs.
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
# as small as the engine allows: the planted hypothesis and one other are screened; a generous
# gate so that the other one is likely to win and the search starts from it; one search batch
# of two points unless it improves; the five-seed confirmation is the engine's minimum
max_hypotheses = 2
validation_seeds = 2
significance = 0.9
exploitation_batch = 2
stall_batches = 1
search_rounds = 1
confirmation_seeds = 5
"""

FAILING_HYPOTHESIS = """
[[hypothesis]]
id = "lr_absurd"
title = "Absurd dense learning rate (fails on purpose)"
rationale = "Planted by the test: the trainer must report divergence."
delta = { "train.lr_dense" = 1e6, "train.lr_sparse" = 1e6 }
prior = 1.0
"""

DIVERGENCE = ("nan_loss", "loss_explosion", "grad_explosion")


def _doc(ws: Path, cid: str) -> dict:
    return json.loads((ws / "campaigns" / cid / "campaign.json").read_text())


def _squeue(name_prefix: str) -> list[tuple[str, str, str, str]]:
    """(job id, name, state, dependency) of the queued jobs whose name starts with the prefix."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%j|%T|%E"], capture_output=True, text=True)
    rows = [tuple(line.split("|")) for line in out.stdout.splitlines() if line.count("|") == 3]
    return [r for r in rows if r[1].startswith(name_prefix)]  # type: ignore[misc]


def _prefix(ws: Path, cid: str) -> str:
    """The campaign's job-name prefix, as the CLI (which resolves the workspace) builds it."""
    return campaign_job_prefix(workspace_tag(ws.resolve()), cid)


def _rea_processes(ws: Path) -> list[str]:
    return [cmd for _, cmd in processes_mentioning(str(ws)) if "rea_cli" in cmd and "resume" in cmd]


def _alloc_tres(job_ids: list[str]) -> dict[str, str]:
    """AllocTRES of each job as Slurm accounted it (sacct lags the controller: poll for it)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", "JobID,AllocTRES"],
        capture_output=True,
        text=True,
    )
    return dict(line.split("|", 1) for line in out.stdout.splitlines() if "|" in line)


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
    dependencies: dict[str, str] = {}  # wake-up job id -> its dependency while it waited
    deadline = time.monotonic() + 500  # under pytest-timeout's 600 s: say where it stood
    while time.monotonic() < deadline:
        doc = _doc(ws, cid)
        if doc["state"] != "RUNNING":
            break
        seen_phases.add(doc["phase"])
        jobs = _squeue(_prefix(ws, cid))
        trials_running = [j for j in jobs if not j[1].endswith(".wake") and j[2] == "RUNNING"]
        wake_waiting = [j for j in jobs if j[1].endswith(".wake") and j[2] == "PENDING"]
        for j in wake_waiting:
            dependencies.setdefault(j[0], j[3])
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

    # the engine's rounds: the probe, the planted hypothesis screened, the search, and (when
    # a candidate beat the baseline) its confirmation on fresh seeds
    phases = doc["phases"]
    validation = [r["kind"] for r in phases["validation"]["rounds"]]
    assert validation[0] == "probe" and validation[-1] == "final", validation
    assert "lr_absurd" in phases["validation"]["selected"]
    assert len(phases["validation"]["selected"]) == 2  # max_hypotheses
    assert "lr_absurd" not in phases["validation"]["gate"]["winners"]
    exploitation = phases["exploitation"]["rounds"]
    assert exploitation[0]["kind"] == "batch", exploitation
    # confirmations run on the fresh seeds only, and every fresh-seed trial is one of them
    confirming = {t for r in exploitation if r["kind"] == "confirmation" for t in r["trial_ids"]}
    fresh = {tid for tid, t in doc["trials"].items() if t["seed"] >= 1000}
    assert confirming == fresh
    proposal, candidate = doc["proposal"], doc["proposal"]["candidate"]
    if candidate not in (None, "baseline"):
        pairs = {(doc["trials"][t]["hypothesis_id"], doc["trials"][t]["seed"]) for t in fresh}
        assert {(h, s) for h in (candidate, "baseline") for s in range(1000, 1005)} <= pairs
        assert proposal["n"] == 5
    assert (proposal["hypothesis_id"] == candidate) == proposal["significant"]

    # one wake-up per round, each chained afterany on its round's array, each resume done
    events = [
        json.loads(x) for x in (ws / "campaigns" / cid / "journal.jsonl").read_text().splitlines()
    ]
    rounds = [r for p in phases.values() for r in p["rounds"]]
    submitted = [e for e in events if e["event"] == "phase_submitted"]
    assert len(submitted) == len(rounds) >= 3
    assert {e["wakeup_job_id"] for e in submitted} == {r["wakeup_job_id"] for r in rounds}
    assert len({r["wakeup_job_id"] for r in rounds}) == len(rounds)
    assert sum(e["event"] == "resume_done" for e in events) >= len(rounds)
    assert not [e for e in events if e["event"] == "resume_failed"]
    assert dependencies, "no wake-up was seen waiting"
    assert set(dependencies) <= {r["wakeup_job_id"] for r in rounds}
    for r in rounds:
        if r["wakeup_job_id"] in dependencies:
            array = r["array_job_ids"][0].split("_")[0]
            assert dependencies[r["wakeup_job_id"]].startswith(f"afterany:{array}_"), dependencies

    # the planted failure was diagnosed as divergence on each of its seeds and given up on
    for seed in (0, 1):
        failed = doc["trials"][f"validation-lr_absurd-s{seed}"]
        assert failed["status"] == "failed"
        assert failed["jobs"][-1]["failure_kind"] in DIVERGENCE, failed["jobs"]
        assert failed["jobs"][-1]["action"] == "give_up" and len(failed["jobs"]) == 1
    failed_ids = {tid for tid, t in doc["trials"].items() if t["status"] != "succeeded"}
    assert failed_ids == {"validation-lr_absurd-s0", "validation-lr_absurd-s1"}
    assert "retry" not in [r["kind"] for r in rounds]

    # GPUs were requested and accounted: spent = elapsed x GPUs, by rea and by Slurm
    records = [j for t in doc["trials"].values() for j in t["jobs"]]
    assert all(j["gpus"] == 1 and j["gpu_seconds"] > 0 for j in records)
    assert doc["budget"]["spent_gpu_hours"] == pytest.approx(
        sum(j["gpu_seconds"] for j in records) / 3600.0, abs=1e-5
    )
    assert doc["budget"]["reserved_gpu_hours"] == 0
    ids = [j["job_id"] for j in records]
    wait_for(lambda: len(_alloc_tres(ids)) == len(ids), 60, "sacct to account every trial")
    tres = _alloc_tres(ids)
    assert all("gres/gpu=1" in tres[i] for i in ids), tres

    wait_for(lambda: not _squeue(_prefix(ws, cid)), 60, "the last wake-up to leave squeue")
    con = duckdb.connect(str(ws / "insights-analyst.duckdb"), read_only=True)
    try:
        n, n_distinct = con.execute(
            f"SELECT count(*), count(DISTINCT trial_id) FROM trials WHERE campaign_id='{cid}'"
        ).fetchall()[0]
        n_fail = con.execute(f"SELECT count(*) FROM failures WHERE campaign_id='{cid}'").fetchall()[
            0
        ][0]
        n_props = con.execute(
            f"SELECT count(*) FROM proposals WHERE campaign_id='{cid}'"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert n == n_distinct == len(doc["trials"])
    assert n_fail >= 2
    assert n_props == 1


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
