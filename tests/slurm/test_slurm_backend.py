"""The Slurm backend on a real cluster: GPUs, wake-up chain, hold/release, reconciliation,
cancel, states with and without accounting, requeue, bad input.

Tasks are tiny shell commands; tests poll with deadlines and assert what happened.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from rea_cli.config import Settings, SlurmSettings
from rea_cli.errors import SchedulerError, UsageError
from rea_cli.executor import backends
from rea_cli.executor.scheduler import (
    ArrayRequest,
    JobInfo,
    JobState,
    Resources,
    TaskSpec,
    WakeupRequest,
    campaign_job_prefix,
    job_name,
)
from rea_cli.executor.slurm import SlurmRunner, SlurmScheduler

pytestmark = pytest.mark.slurm

RES = Resources(time_limit_min=5, cpus_per_task=1)
# What the agent's wake-ups ask for with a default [slurm] section: 1 CPU, 30 min.
WAKE_RES = backends.wakeup_resources(Settings(backend="slurm"))
DEADLINE_S = 120.0


def sh(tmp_path: Path, script: str, env: dict[str, str] | None = None) -> TaskSpec:
    return TaskSpec(["sh", "-c", script], tmp_path, tmp_path / "logs", env or {})


def array(
    tmp_path: Path,
    name: str,
    tasks: Sequence[TaskSpec],
    parallelism: int,
    *,
    resources: Resources = RES,
    hold: bool = False,
) -> ArrayRequest:
    return ArrayRequest(name, tasks, resources, parallelism, workdir=tmp_path, hold=hold)


def wakeup(
    name: str, argv: Sequence[str], log_dir: Path, resources: Resources = WAKE_RES
) -> WakeupRequest:
    return WakeupRequest(name, argv, resources, log_dir=log_dir, workdir=log_dir)


def wait_for(
    scheduler: SlurmScheduler,
    ids: Sequence[str],
    done: Callable[[JobInfo], bool] = lambda i: i.state.is_terminal,
    deadline_s: float = DEADLINE_S,
) -> dict[str, JobInfo]:
    end = time.monotonic() + deadline_s
    while True:
        states = scheduler.states(ids)
        if all(done(states[j]) for j in ids):
            return states
        if time.monotonic() > end:
            raise AssertionError(f"not there in {deadline_s:.0f} s: {states}")
        time.sleep(0.25)


def squeue_ids(ids: Sequence[str]) -> list[str]:
    """Jobs of `ids` that plain squeue (pending/running, not ended) still lists."""
    bases = ",".join(dict.fromkeys(j.split("_")[0] for j in ids))
    out = subprocess.run(
        ["squeue", "-h", "-r", "-j", bases, "-o", "%i|%T"], capture_output=True, text=True
    )
    return [line for line in out.stdout.splitlines() if line.strip()]


def scontrol(*args: str) -> None:
    subprocess.run(["scontrol", *args], check=True, capture_output=True, timeout=30)


def squeue_field(job_id: str, field: str) -> str:
    """One squeue field of a job the controller still knows (`-O Field:|`: no width limit)."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job_id, "-O", f"{field}:|"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.splitlines()[0].rstrip("|")


def test_gpu_array_with_failing_task_then_afterany_wakeup(
    slurm: SlurmScheduler, tmp_path: Path, campaign: str, ws_tag: str
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    script = (
        'echo "$CUDA_VISIBLE_DEVICES" > "$MARKS/gpu.$I"; sleep 1; date +%s.%N > "$MARKS/end.$I";'
        ' [ "$I" = 1 ] && exit 3; exit 0'
    )
    tasks = [sh(tmp_path, script, {"MARKS": str(marks), "I": str(i)}) for i in range(3)]
    name = job_name(ws_tag, campaign, "validation", 1)
    gpu = Resources(time_limit_min=5, gpus_per_task=1)

    ids = slurm.submit_array(array(tmp_path, name, tasks, 2, resources=gpu, hold=True))
    wake = slurm.submit_wakeup(
        wakeup(
            job_name(ws_tag, campaign, "validation", 1, wakeup=True),
            ["sh", "-c", f"date +%s.%N > {marks}/wake"],
            tmp_path / "wake",
        ),
        ids,
    )
    slurm.release(ids)

    states = wait_for(slurm, [*ids, wake])
    assert [states[j].state for j in ids] == [
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.COMPLETED,
    ]
    assert states[ids[1]].exit_code == 3
    assert all(states[j].gpus == 1 for j in ids) and states[wake].gpus == 0
    assert states[wake].state is JobState.COMPLETED
    # every task saw a GPU; the wake-up started after the last task ended
    assert all((marks / f"gpu.{i}").read_text().strip() in {"0", "1"} for i in range(3))
    last_end = max(float((marks / f"end.{i}").read_text()) for i in range(3))
    assert float((marks / "wake").read_text()) >= last_end
    assert "rea wake-up" in next((tmp_path / "wake").glob("*.out")).read_text()
    assert (tmp_path / "logs" / f"{ids[0]}.out").exists()  # task output in its log_dir


def test_held_array_waits_for_release_and_wakeup_for_the_array(
    slurm: SlurmScheduler, tmp_path: Path, campaign: str, ws_tag: str
) -> None:
    name = job_name(ws_tag, campaign, "combination", 1)
    round_dir = tmp_path / "round dir"
    round_dir.mkdir()
    tasks = [sh(tmp_path, "true") for _ in range(2)]
    ids = slurm.submit_array(array(round_dir, name, tasks, 2, hold=True))
    wake = slurm.submit_wakeup(wakeup(f"{name}.wake", ["true"], tmp_path / "w"), ids)

    time.sleep(1.0)
    held = slurm.states([*ids, wake])
    assert {held[j].state for j in ids} == {JobState.HELD}
    assert held[ids[0]].reason == "JobHeldUser"
    assert (held[wake].state, held[wake].reason) == (JobState.PENDING, "Dependency")
    # Each job starts where its request says, not where this process runs.
    assert squeue_field(ids[0], "WorkDir") == str(round_dir)
    assert squeue_field(wake, "WorkDir") == str(tmp_path / "w")

    slurm.release(ids)

    states = wait_for(slurm, [*ids, wake])
    assert {s.state for s in states.values()} == {JobState.COMPLETED}


def test_find_reconciles_a_submission_from_another_process(
    slurm: SlurmScheduler, tmp_path: Path, campaign: str, ws_tag: str
) -> None:
    """A crash between sbatch and recording the ids: a fresh scheduler finds them by name."""
    name = job_name(ws_tag, campaign, "validation", 2)
    tasks = [sh(tmp_path, "sleep 30") for _ in range(3)]
    ids = slurm.submit_array(array(tmp_path, name, tasks, 1, hold=True))

    fresh = SlurmScheduler(tmp_path / "state")  # as the next `rea resume` would build it
    found = fresh.find(name)

    assert sorted(j.job_id for j in found) == sorted(ids)
    assert {j.name for j in found} == {name} and {j.state for j in found} == {JobState.HELD}
    assert fresh.find(campaign_job_prefix(ws_tag, campaign) + "exploitation.") == []
    fresh.cancel(ids)


def test_a_fresh_scheduler_sends_the_wakeup_its_requests_resources(
    tmp_path: Path, campaign: str, ws_tag: str
) -> None:
    """A fresh `rea resume` that only chains a wake-up (no array submitted by this process)
    still sends the site's account and QOS: they come with the request, built from settings."""
    site = Settings(backend="slurm", slurm=SlurmSettings(account="root", qos="normal"))
    fresh = SlurmScheduler(tmp_path / "state")
    name = job_name(ws_tag, campaign, "validation", 1, wakeup=True)

    wake = fresh.submit_wakeup(
        wakeup(name, ["true"], tmp_path / "w", backends.wakeup_resources(site)), []
    )

    (script,) = (tmp_path / "state" / "wakeups").glob(f"{name}-*.sbatch")
    lines = script.read_text().splitlines()
    assert "#SBATCH --account=root" in lines and "#SBATCH --qos=normal" in lines
    assert (squeue_field(wake, "Account"), squeue_field(wake, "QOS")) == ("root", "normal")
    assert wait_for(fresh, [wake])[wake].state is JobState.COMPLETED


def test_cancel_leaves_nothing_in_squeue(
    slurm: SlurmScheduler, tmp_path: Path, campaign: str, ws_tag: str
) -> None:
    name = job_name(ws_tag, campaign, "validation", 1)
    tasks = [sh(tmp_path, "sleep 300") for _ in range(3)]
    ids = slurm.submit_array(array(tmp_path, name, tasks, 1))
    wake = slurm.submit_wakeup(wakeup(f"{name}.wake", ["true"], tmp_path / "w"), ids)
    wait_for(slurm, ids[:1], lambda i: i.state is JobState.RUNNING)

    slurm.cancel([*ids, wake])

    end = time.monotonic() + 30
    while squeue_ids([*ids, wake]) and time.monotonic() < end:
        time.sleep(0.25)
    assert squeue_ids([*ids, wake]) == []
    states = slurm.states([*ids, wake])
    assert {s.state for s in states.values()} == {JobState.CANCELLED}


def test_cancel_sends_sigterm_to_the_command(
    slurm: SlurmScheduler, tmp_path: Path, campaign: str, ws_tag: str
) -> None:
    """A cancelled or preempted task's command is told at once (the trainer then stops
    cleanly at its last checkpoint), not killed without a word KillWait later."""
    up, term = tmp_path / "up", tmp_path / "term"
    task = sh(tmp_path, f"trap 'echo TERM > {term}; exit 143' TERM; touch {up}; sleep 300 & wait")
    name = job_name(ws_tag, campaign, "validation", 1)
    (job,) = slurm.submit_array(array(tmp_path, name, [task], 1))
    wait_for(slurm, [job], lambda i: i.state is JobState.RUNNING and up.exists())

    slurm.cancel([job])

    wait_for(slurm, [job])
    assert term.exists(), "the command never got SIGTERM"
    assert term.read_text().strip() == "TERM"


@pytest.mark.parametrize("accounting", [True, False], ids=["with-sacct", "without-sacct"])
def test_states_are_final_right_after_the_array_ends(
    tmp_path: Path, campaign: str, ws_tag: str, accounting: bool
) -> None:
    slurm = SlurmScheduler(tmp_path / "state")
    if not accounting:  # a site without slurmdbd
        info = slurm.cluster()
        info.config["AccountingStorageType"] = "accounting_storage/none"
    name = job_name(ws_tag, campaign, "validation", 1)
    tasks = [sh(tmp_path, f"exit {i}") for i in range(3)]
    ids = slurm.submit_array(array(tmp_path, name, tasks, 3))
    wake = slurm.submit_wakeup(wakeup(f"{name}.wake", ["true"], tmp_path / "w"), ids)
    wait_for(slurm, [wake], lambda i: i.state is JobState.RUNNING or i.state.is_terminal)

    states = slurm.states(ids)  # the moment the wake-up runs: no waiting for sacct

    assert [(states[j].state, states[j].exit_code) for j in ids] == [
        (JobState.COMPLETED, 0),
        (JobState.FAILED, 1),
        (JobState.FAILED, 2),
    ]
    assert all(states[j].elapsed_s is not None and states[j].ended_at for j in ids)
    assert (slurm.runner.calls["sacct"] > 0) is accounting


def test_requeue_runs_the_same_command_again(
    slurm: SlurmScheduler, tmp_path: Path, campaign: str, ws_tag: str
) -> None:
    runs = tmp_path / "runs.txt"
    task = sh(tmp_path, f'echo "run ${{SLURM_RESTART_COUNT:-0}}" >> {runs}; sleep 300')
    name = job_name(ws_tag, campaign, "validation", 1)
    (job,) = slurm.submit_array(array(tmp_path, name, [task], 1))
    wait_for(slurm, [job], lambda i: i.state is JobState.RUNNING and runs.exists())

    scontrol("requeue", job)
    # requeued jobs wait ~120 s (BeginTime) unless told to start now, once they are pending
    wait_for(slurm, [job], lambda i: i.state is JobState.PENDING, deadline_s=60)
    scontrol("update", f"jobid={job}", "StartTime=now")
    info = wait_for(slurm, [job], lambda i: i.state is JobState.RUNNING, deadline_s=60)[job]
    end = time.monotonic() + 30
    while len(runs.read_text().splitlines()) < 2 and time.monotonic() < end:
        time.sleep(0.25)

    assert info.restarts == 1
    assert runs.read_text().splitlines() == ["run 0", "run 1"]
    slurm.cancel([job])


def test_preemption_signal_requeues_through_submitit(
    slurm: SlurmScheduler, tmp_path: Path, campaign: str, ws_tag: str
) -> None:
    """USR2 early in the run (a preemption notice): submitit checkpoints and requeues; the
    command, which ignores USR2 itself, runs again as a new attempt."""
    runs = tmp_path / "runs.txt"
    task = sh(tmp_path, f'echo "run ${{SLURM_RESTART_COUNT:-0}}" >> {runs}; sleep 300')
    name = job_name(ws_tag, campaign, "validation", 1)
    # USR2 within the first 20 min of a 30 min limit = preemption
    (job,) = slurm.submit_array(
        array(tmp_path, name, [task], 1, resources=Resources(time_limit_min=30))
    )
    wait_for(slurm, [job], lambda i: i.state is JobState.RUNNING and runs.exists())

    subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=30)

    wait_for(slurm, [job], lambda i: i.state is JobState.PENDING and i.restarts == 1, 60)
    scontrol("update", f"jobid={job}", "StartTime=now")
    end = time.monotonic() + 60
    while len(runs.read_text().splitlines()) < 2 and time.monotonic() < end:
        time.sleep(0.25)
    assert runs.read_text().splitlines() == ["run 0", "run 1"]
    slurm.cancel([job])


def test_bad_partition_and_account_submit_nothing(
    slurm: SlurmScheduler, tmp_path: Path, campaign: str, ws_tag: str
) -> None:
    name = job_name(ws_tag, campaign, "validation", 1)
    for bad, message in [
        (Resources(partition="no-such-partition"), "unknown Slurm partition 'no-such-partition'"),
        (Resources(account="no-such-account"), "unknown Slurm account 'no-such-account'"),
        (Resources(time_limit_min=0), "invalid Slurm time limit 0"),
        (Resources(time_limit_min=float("nan")), "invalid Slurm time limit nan"),
    ]:
        with pytest.raises(UsageError, match=message):
            slurm.submit_array(array(tmp_path, name, [sh(tmp_path, "true")], 1, resources=bad))
        with pytest.raises(UsageError, match=message):  # a wake-up is checked the same way
            slurm.submit_wakeup(wakeup(f"{name}.wake", ["true"], tmp_path / "w", bad), [])

    assert slurm.runner.calls["sbatch"] == 0
    assert slurm.find(campaign_job_prefix(ws_tag, campaign)) == []


def test_unreachable_controller_is_one_line_and_submits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "slurm.conf"
    conf.write_text(
        "ClusterName=nowhere\nSlurmctldHost=nowhere(127.0.0.1)\nSlurmctldPort=6999\n"
        "AuthType=auth/munge\nNodeName=n1 CPUs=1\nPartitionName=p Nodes=n1\n"
    )
    monkeypatch.setenv("SLURM_CONF", str(conf))
    runner = SlurmRunner(retries=0, timeout_s=30)
    slurm = SlurmScheduler(tmp_path / "state", runner=runner)

    with pytest.raises(SchedulerError) as error:
        slurm.submit_array(array(tmp_path, "rea.ab12cd.x.validation.r1", [sh(tmp_path, "true")], 1))

    assert str(error.value).startswith("Slurm is not reachable (")
    assert "\n" not in str(error.value) and runner.calls["sbatch"] == 0


# A task reaching its time limit ends TIMEOUT, not FAILED: the contract suite's
# test_a_task_ignoring_sigterm_ends_within_its_enforced_limit (both backends).
