"""Faults found when rea ran on a real cluster, each reproduced on the local one (scripts/
slurm-up.sh: one 2-CPU node, 2 fake GPUs, cgroup v1 with ConstrainRAMSpace, slurmdbd):

- a trial killed at its memory limit by the cgroup (the job says FAILED 1:0, only its step says
  OUT_OF_MEMORY) is retried with more memory; one whose data and model alone do not fit in the
  most it may get is excluded, saying so, not retried;
- a requeued job's earlier runs count in what it spent;
- `rea cancel` reads back every job's final state: a trial that had finished keeps COMPLETED and
  its time, nothing stays reserved;
- one campaign id in two workspaces: neither touches the other's jobs;
- per-trial resources no node has are refused before anything is submitted, `rea init` writes
  what fits, and a trial pending for a reason that can never clear pauses the campaign;
- paths with shell syntax are quoted in what Slurm runs, and the arrays start where rea says.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from rea_cli.app.resume import apply_info
from rea_cli.campaign.model import JobRecord
from rea_cli.executor.scheduler import (
    ArrayRequest,
    JobState,
    Resources,
    TaskSpec,
    campaign_job_prefix,
    job_name,
    workspace_tag,
)
from rea_cli.executor.slurm import SlurmScheduler
from tests.conftest import campaign_doc, make_workspace, run_rea, start_campaign, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def settings(mem_gb: float = 1.0, parallelism: int = 2, extra: str = "") -> str:
    return f"""
[slurm]
gpus_per_trial = 1
cpus_per_trial = 1
mem_gb = {mem_gb}
time_limit_min = 10
array_parallelism = {parallelism}
{extra}

[planner]
max_hypotheses = 1
validation_seeds = 2
"""


def _prefix(ws: Path, cid: str) -> str:
    return campaign_job_prefix(workspace_tag(ws.resolve()), cid)


def _queued(prefix: str) -> list[tuple[str, str, str, str]]:
    """(job id, name, state, reason) of jobs still in squeue whose name starts with prefix."""
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i|%j|%T|%r"], capture_output=True, text=True, check=True
    )
    rows = [tuple(x.split("|")) for x in out.stdout.splitlines() if x.count("|") == 3]
    return [r for r in rows if r[1].startswith(prefix)]  # type: ignore[misc]


def _sacct_state(job_id: str) -> str:
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", job_id, "--format=JobID,State"],
        capture_output=True,
        text=True,
        check=True,
    )
    states = {x.split("|")[0]: x.split("|")[1] for x in out.stdout.splitlines() if "|" in x}
    return states.get(job_id, "")


def _events(ws: Path, cid: str) -> list[dict[str, Any]]:
    text = (ws / "campaigns" / cid / "journal.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def _stop(ws: Path, cid: str) -> None:
    if not (ws / "campaigns" / cid / "campaign.json").exists():
        return
    if campaign_doc(ws, cid)["state"] in ("RUNNING", "PAUSED", "APPROVED"):
        run_rea(ws, "cancel", cid)


def _cid(tag: str) -> str:
    return f"{tag}{int(time.time() * 1000) % 10**7}"


# ---------------------------------------------------------------- 1. cgroup OOM


def test_oom_killed_trial_is_retried_with_more_memory(tmp_path: Path) -> None:
    """At 0.1 GB a trial dies importing torch; the step says OUT_OF_MEMORY, the job FAILED 1:0.
    It is retried with twice the memory (again if need be) until it trains."""
    ws = make_workspace(tmp_path / "ws", backend="slurm", extra=settings(mem_gb=0.1))
    cid = _cid("oom")
    start_campaign(ws, cid, profile="tiny")
    try:
        probe = campaign_doc(ws, cid)["phases"]["validation"]["rounds"][0]["trial_ids"]

        def probe_done() -> bool:
            trials = campaign_doc(ws, cid)["trials"]
            return all(trials[tid]["status"] in ("succeeded", "failed") for tid in probe)

        wait_for(probe_done, 480, "the OOM-killed probe trials to be retried")
        doc = campaign_doc(ws, cid)
        rounds = doc["phases"]["validation"]["rounds"]
        for tid in probe:
            trial = doc["trials"][tid]
            first, last = trial["jobs"][0], trial["jobs"][-1]
            assert trial["status"] == "succeeded" and trial["diagnosis"] is None, trial
            assert first["state"] == "OUT_OF_MEMORY", first  # the step line, not FAILED 1:0
            assert _sacct_state(first["job_id"]) == "FAILED"  # what the job line says
            assert "was killed at its memory limit of 102M" in first["reason"]
            assert (first["runbook"], first["action"]) == ("oom-killed", "retry_with")
            assert last["state"] == "COMPLETED" and trial["mem_gb"] in (0.2, 0.4)
            (retry,) = [r for r in rounds if last["job_id"] in r["array_job_ids"]]
            assert retry["kind"] == "retry" and retry["mem_gb"] >= trial["mem_gb"]
            mem = f"#SBATCH --mem={round(retry['mem_gb'] * 1024)}M"
            assert mem in _submission_script(ws, last["job_id"])  # what Slurm was asked for
    finally:
        _stop(ws, cid)


def _submission_script(ws: Path, job_id: str) -> str:
    """submitit's sbatch script of an array (kept next to its logs, under .rea/slurm)."""
    base = job_id.split("_")[0]
    found = list((ws / ".rea" / "slurm").rglob(f"{base}_submission.sh"))
    assert found, f"no submission script of {job_id}"
    return found[0].read_text()


def test_oom_killed_trial_that_cannot_fit_is_excluded_not_retried(tmp_path: Path) -> None:
    """[slurm] max_mem_gb caps the memory at what it already had: nothing more to ask for, and
    it died before its first batch (data and model alone): a smaller batch cannot help."""
    extra = "max_mem_gb = 0.1"
    ws = make_workspace(tmp_path / "ws", backend="slurm", extra=settings(0.1, extra=extra))
    cid = _cid("oomx")
    start_campaign(ws, cid, profile="tiny")
    try:
        wait_for(lambda: campaign_doc(ws, cid)["state"] != "RUNNING", 300, "the campaign to stop")
        doc = campaign_doc(ws, cid)
        assert doc["state"] == "PAUSED", doc.get("pause_reason")
        for trial in doc["trials"].values():
            (job,) = trial["jobs"]  # one job: not retried
            assert (job["state"], job["runbook"], job["action"]) == (
                "OUT_OF_MEMORY",
                "oom-killed",
                "give_up",
            )
            assert "it already had 0.1 GB, the most a task may get" in job["reason"]
            assert "before its first batch" in job["reason"]
            assert job["reason"].endswith("the hypothesis is excluded, not retried")
        status = run_rea(ws, "status", cid)
        said = " ".join(status.stdout.split())
        assert "the hypothesis is excluded" in said and "NonZeroExitCode" not in said
    finally:
        _stop(ws, cid)


# ---------------------------------------------------------------- 10. requeue: every run counts


def test_spent_counts_every_run_of_a_requeued_job(
    slurm: SlurmScheduler, tmp_path: Path, campaign: str, ws_tag: str
) -> None:
    runs = tmp_path / "runs.txt"
    script = (
        f'echo "run ${{SLURM_RESTART_COUNT:-0}}" >> {runs}; '
        '[ "${SLURM_RESTART_COUNT:-0}" -ge 1 ] && { sleep 3; exit 0; }; sleep 300'
    )
    task = TaskSpec(["sh", "-c", script], tmp_path, tmp_path / "logs")
    name = job_name(ws_tag, campaign, "validation", 1)
    request = ArrayRequest(name, [task], Resources(time_limit_min=5), 1, workdir=tmp_path)
    (job,) = slurm.submit_array(request)

    def running_a_while() -> bool:
        info = slurm.states([job])[job]
        return info.state is JobState.RUNNING and (info.elapsed_s or 0) >= 5

    wait_for(running_a_while, 120, "the first run to run a few seconds")
    subprocess.run(["scontrol", "requeue", job], check=True)
    wait_for(lambda: slurm.states([job])[job].state is JobState.PENDING, 60, "the requeue")
    subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"], check=True)

    def ended_and_accounted() -> bool:
        return slurm.states([job])[job].state is JobState.COMPLETED and len(_runs(job)) == 2

    wait_for(ended_and_accounted, 120, "the second run to end and reach sacct")
    info = slurm.states([job])[job]
    first, last = _runs(job)
    assert info.restarts == 1 and runs.read_text().splitlines() == ["run 0", "run 1"]
    assert first >= 4 and info.elapsed_s == first + last  # not only the last run
    record = JobRecord(job_id=job, round=1, state=JobState.RUNNING, gpus=1)
    apply_info(record, info)
    assert record.gpu_seconds == first + last  # what the budget's spent adds up


def _runs(job_id: str) -> list[float]:
    """ElapsedRaw of every run of the job, as sacct -D lists them."""
    out = subprocess.run(
        ["sacct", "-X", "-D", "-n", "-P", "-j", job_id.split("_")[0], "--format=ElapsedRaw,State"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [float(x.split("|")[0]) for x in out.stdout.splitlines() if x.split("|")[0].isdigit()]


# ---------------------------------------------------------------- 3, 7, 9: cancel, quoting


NASTY = "ws $(touch pwned) [x]"


def test_cancel_keeps_finished_trials_and_releases_the_reservation(tmp_path: Path) -> None:
    """One task at a time: the first trial ends before the cancel, nothing has ingested it."""
    ws = make_workspace(tmp_path / NASTY, backend="slurm", extra=settings(parallelism=1))
    cid = _cid("cx")
    start_campaign(ws, cid, profile="tiny")
    prefix = _prefix(ws, cid)
    try:
        doc = campaign_doc(ws, cid)
        (rnd,) = doc["phases"]["validation"]["rounds"]
        first, second, last = *rnd["array_job_ids"][:2], rnd["array_job_ids"][-1]
        # the last task waits (a user hold) so that one task is surely still queued at the
        # cancel, however fast the others run
        subprocess.run(["scontrol", "uhold", last], capture_output=True, check=False)
        wait_for(lambda: _sacct_state(first) == "COMPLETED", 300, "the first trial to end")
        assert any(j[0] == last for j in _queued(prefix))
        assert doc["trials"][rnd["trial_ids"][0]]["jobs"][0]["state"] == "HELD"  # as recorded

        # arrays and wake-up started where rea says, whatever this process's directory (#9)
        phase_dir = ws / "campaigns" / cid / "phases" / "validation"
        assert _workdir(second) == str(phase_dir)
        assert _workdir(rnd["wakeup_job_id"]) == str(phase_dir / "logs")
        # the wake-up script quotes every path (#7)
        (script,) = (ws / ".rea" / "slurm" / "wakeups").glob(f"{prefix}validation.r1.wake-*")
        lines = script.read_text().splitlines()
        (chdir,) = [x for x in lines if x.startswith("#SBATCH --chdir=")]
        assert shlex.split(chdir.split("=", 1)[1]) == [str(phase_dir / "logs")]
        (exec_line,) = [x for x in lines if x.startswith("exec ")]
        argv = shlex.split(exec_line)
        assert argv[argv.index("--workspace") + 1] == str(ws)

        done = run_rea(ws, "cancel", cid)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: not _queued(prefix), 60, "squeue to drop the campaign's jobs")
        doc = campaign_doc(ws, cid)
        assert doc["state"] == "CANCELLED"
        finished = doc["trials"][rnd["trial_ids"][0]]
        assert finished["jobs"][0]["state"] == "COMPLETED"
        assert finished["jobs"][0]["gpu_seconds"] > 0
        # every other task as Slurm ended it: the second may have finished meanwhile, the
        # held last one never started
        recorded = {
            job: doc["trials"][tid]["jobs"][0]["state"]
            for job, tid in zip(rnd["array_job_ids"], rnd["trial_ids"], strict=True)
        }
        assert recorded == {job: _sacct_state(job).split()[0] for job in recorded}
        assert recorded[rnd["array_job_ids"][-1]] == "CANCELLED"
        assert doc["budget"]["reserved_gpu_hours"] == 0
        assert doc["budget"]["spent_gpu_hours"] > 0
        assert not list(tmp_path.rglob("pwned")) and not list(Path.cwd().glob("pwned"))
    finally:
        _stop(ws, cid)


def _workdir(job_id: str) -> str:
    out = subprocess.run(
        ["scontrol", "show", "job", job_id],
        capture_output=True,
        text=True,
        check=True,
    )
    for word in out.stdout.split("\n"):
        word = word.strip()
        if word.startswith("WorkDir="):
            return word.removeprefix("WorkDir=")
    raise AssertionError(f"no WorkDir for {job_id}")


# ---------------------------------------------------------------- 4. two workspaces, one id


def test_one_campaign_id_in_two_workspaces(tmp_path: Path) -> None:
    cid = _cid("same")
    one = make_workspace(tmp_path / "one", backend="slurm", extra=settings(parallelism=1))
    two = make_workspace(tmp_path / "two", backend="slurm", extra=settings(parallelism=1))
    start_campaign(one, cid, profile="tiny")
    try:
        # held, as an interrupted submission of the same round would leave them
        trials = [j for j in _queued(_prefix(one, cid)) if not j[1].endswith(".wake")]
        for job in [j[0] for j in trials if j[2] == "PENDING"]:
            # uhold: a user hold (JobHeldUser), as rea's own held submissions have
            subprocess.run(["scontrol", "uhold", job], capture_output=True, check=False)
        mine = [j[0] for j in _queued(_prefix(one, cid)) if j[3] == "JobHeldUser"]
        assert mine, _queued(_prefix(one, cid))
        start_campaign(two, cid, profile="tiny")
        assert _prefix(one, cid) != _prefix(two, cid)
        theirs = {j[0] for j in _queued(_prefix(two, cid))}
        assert theirs and theirs.isdisjoint(mine)
        assert run_rea(two, "cancel", cid).returncode == 0
        wait_for(lambda: not _queued(_prefix(two, cid)), 60, "the second workspace's jobs to go")
        left = {j[0]: j[3] for j in _queued(_prefix(one, cid))}
        assert set(mine) <= set(left) and {left[j] for j in mine} == {"JobHeldUser"}
        assert campaign_doc(one, cid)["state"] == "RUNNING"
    finally:
        _stop(one, cid)
        _stop(two, cid)


# ---------------------------------------------------------------- 5. resources that never run


def _largest_node() -> tuple[int, float, int]:
    """CPUs, memory (GB) and GPUs of the default partition's largest node, as sinfo says."""
    out = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%c|%m|%G|%P"], capture_output=True, text=True, check=True
    )
    nodes = [x.split("|") for x in out.stdout.splitlines() if x.count("|") == 3]
    mine = [n for n in nodes if n[3].endswith("*")] or nodes
    cpus = max(int(n[0]) for n in mine)
    mem_gb = max(float(n[1]) for n in mine) / 1024
    gres = [[g.split("(")[0].split(":") for g in n[2].split(",")] for n in mine]
    gpus = max(sum(int(g[-1]) for g in node if g[0] == "gpu") for node in gres)
    return cpus, mem_gb, gpus


def test_init_writes_per_trial_resources_that_fit_the_cluster(tmp_path: Path) -> None:
    done = run_rea(None, "init", str(tmp_path / "ws"), "--backend", "slurm")
    assert done.returncode == 0, done.stderr
    slurm = tomllib.loads((tmp_path / "ws" / "rea.toml").read_text())["slurm"]
    cpus, mem_gb, gpus = _largest_node()
    assert slurm["cpus_per_trial"] == min(4, cpus)
    assert slurm["mem_gb"] <= min(16.0, mem_gb)
    assert slurm["gpus_per_trial"] == min(1, gpus)
    assert "per-trial resources fit partition" in " ".join(done.stdout.split())


def test_resources_no_node_has_are_refused_before_anything_is_submitted(tmp_path: Path) -> None:
    cpus = _largest_node()[0]
    extra = settings().replace("cpus_per_trial = 1", f"cpus_per_trial = {cpus + 2}")
    ws = make_workspace(tmp_path / "ws", backend="slurm", extra=extra)
    cid = _cid("big")
    start_campaign(ws, cid, profile="tiny", launch=False)
    done = run_rea(ws, "launch", cid)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("lower [slurm] cpus_per_trial in rea.toml")
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    doc = campaign_doc(ws, cid)
    assert doc["state"] == "APPROVED" and not doc["trials"]
    assert not _queued(_prefix(ws, cid))
    assert [e["event"] for e in _events(ws, cid)][-1] == "launch_refused"
    tick = run_rea(ws, "tick", "--json")  # the refused launch is not retried by the watchdog
    assert json.loads(tick.stdout)["campaigns"] == []


def test_a_trial_that_can_never_start_pauses_the_campaign(tmp_path: Path) -> None:
    """A pending task whose request no node satisfies (as after a change of the partition)
    waits forever with reason PartitionConfig, and so would its wake-up: tick pauses it."""
    ws = make_workspace(tmp_path / "ws", backend="slurm", extra=settings(parallelism=1))
    cid = _cid("pc")
    start_campaign(ws, cid, profile="tiny")
    prefix = _prefix(ws, cid)
    try:
        (rnd,) = campaign_doc(ws, cid)["phases"]["validation"]["rounds"]
        last = rnd["array_job_ids"][-1]
        cpus = _largest_node()[0]
        subprocess.run(
            ["scontrol", "update", f"jobid={last}", f"NumCPUs={cpus + 2}"],
            capture_output=True,
            check=False,  # it says the configuration is not available: that is the point
        )

        def blocked() -> bool:
            # while a sibling runs Slurm says JobArrayTaskLimit; once alone, PartitionConfig
            trials = [j for j in _queued(prefix) if not j[1].endswith(".wake")]
            return [(j[0], j[3]) for j in trials] == [(last, "PartitionConfig")]

        wait_for(blocked, 300, "the task to pend alone with reason PartitionConfig")
        tick = run_rea(ws, "tick", "--json", timeout=300)
        assert tick.returncode == 0, tick.stderr
        (entry,) = json.loads(tick.stdout)["campaigns"]
        assert (
            entry["action"] == "paused" and "can never start (PartitionConfig)" in entry["reason"]
        )
        doc = campaign_doc(ws, cid)
        assert doc["state"] == "PAUSED"
        assert "PartitionConfig" in doc["pause_reason"] and "cpus_per_trial" in doc["pause_reason"]
        wait_for(lambda: not _queued(prefix), 60, "the campaign's jobs to be cancelled")
        assert campaign_doc(ws, cid)["budget"]["reserved_gpu_hours"] == 0
        status = " ".join(run_rea(ws, "status", cid).stdout.split())
        assert "paused: trial" in status and "PartitionConfig" in status
    finally:
        _stop(ws, cid)
