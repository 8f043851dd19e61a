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

from rea_cli.errors import SchedulerError, UsageError
from rea_cli.executor.scheduler import JobInfo, JobState, Resources, TaskSpec, job_name
from rea_cli.executor.slurm import SlurmRunner, SlurmScheduler

pytestmark = pytest.mark.slurm

RES = Resources(time_limit_min=5, cpus_per_task=1)
DEADLINE_S = 120.0


def sh(tmp_path: Path, script: str, env: dict[str, str] | None = None) -> TaskSpec:
    return TaskSpec(["sh", "-c", script], tmp_path, tmp_path / "logs", env or {})


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


def test_gpu_array_with_failing_task_then_afterany_wakeup(
    slurm: SlurmScheduler, tmp_path: Path, campaign: str
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    script = (
        'echo "$CUDA_VISIBLE_DEVICES" > "$MARKS/gpu.$I"; sleep 1; date +%s.%N > "$MARKS/end.$I";'
        ' [ "$I" = 1 ] && exit 3; exit 0'
    )
    tasks = [sh(tmp_path, script, {"MARKS": str(marks), "I": str(i)}) for i in range(3)]
    name = job_name(campaign, "validation", 1)

    ids = slurm.submit_array(
        tasks, job_name=name, resources=Resources(time_limit_min=5, gpus_per_task=1),
        parallelism=2, hold=True,
    )  # fmt: skip
    wake = slurm.submit_wakeup(
        ids,
        ["sh", "-c", f"date +%s.%N > {marks}/wake"],
        job_name=job_name(campaign, "validation", 1, wakeup=True),
        log_dir=tmp_path / "wake",
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
    slurm: SlurmScheduler, tmp_path: Path, campaign: str
) -> None:
    name = job_name(campaign, "combination", 1)
    ids = slurm.submit_array(
        [sh(tmp_path, "true") for _ in range(2)], job_name=name, resources=RES,
        parallelism=2, hold=True,
    )  # fmt: skip
    wake = slurm.submit_wakeup(ids, ["true"], job_name=f"{name}.wake", log_dir=tmp_path / "w")

    time.sleep(1.0)
    held = slurm.states([*ids, wake])
    assert {held[j].state for j in ids} == {JobState.HELD}
    assert held[ids[0]].reason == "JobHeldUser"
    assert (held[wake].state, held[wake].reason) == (JobState.PENDING, "Dependency")

    slurm.release(ids)

    states = wait_for(slurm, [*ids, wake])
    assert {s.state for s in states.values()} == {JobState.COMPLETED}


def test_find_reconciles_a_submission_from_another_process(
    slurm: SlurmScheduler, tmp_path: Path, campaign: str
) -> None:
    """A crash between sbatch and recording the ids: a fresh scheduler finds them by name."""
    name = job_name(campaign, "validation", 2)
    ids = slurm.submit_array(
        [sh(tmp_path, "sleep 30") for _ in range(3)], job_name=name, resources=RES,
        parallelism=1, hold=True,
    )  # fmt: skip

    fresh = SlurmScheduler(tmp_path / "state")  # as the next `rea resume` would build it
    found = fresh.find(f"rea.{campaign}.validation.r2")

    assert sorted(j.job_id for j in found) == sorted(ids)
    assert {j.name for j in found} == {name} and {j.state for j in found} == {JobState.HELD}
    assert fresh.find(f"rea.{campaign}.exploitation.") == []
    fresh.cancel(ids)


def test_cancel_leaves_nothing_in_squeue(
    slurm: SlurmScheduler, tmp_path: Path, campaign: str
) -> None:
    name = job_name(campaign, "validation", 1)
    ids = slurm.submit_array(
        [sh(tmp_path, "sleep 300") for _ in range(3)], job_name=name, resources=RES, parallelism=1
    )
    wake = slurm.submit_wakeup(ids, ["true"], job_name=f"{name}.wake", log_dir=tmp_path / "w")
    wait_for(slurm, ids[:1], lambda i: i.state is JobState.RUNNING)

    slurm.cancel([*ids, wake])

    end = time.monotonic() + 30
    while squeue_ids([*ids, wake]) and time.monotonic() < end:
        time.sleep(0.25)
    assert squeue_ids([*ids, wake]) == []
    states = slurm.states([*ids, wake])
    assert {s.state for s in states.values()} == {JobState.CANCELLED}


@pytest.mark.parametrize("accounting", [True, False], ids=["with-sacct", "without-sacct"])
def test_states_are_final_right_after_the_array_ends(
    tmp_path: Path, campaign: str, accounting: bool
) -> None:
    slurm = SlurmScheduler(tmp_path / "state")
    if not accounting:  # a site without slurmdbd
        info = slurm.cluster()
        info.config["AccountingStorageType"] = "accounting_storage/none"
    name = job_name(campaign, "validation", 1)
    ids = slurm.submit_array(
        [sh(tmp_path, f"exit {i}") for i in range(3)], job_name=name, resources=RES, parallelism=3
    )
    wake = slurm.submit_wakeup(ids, ["true"], job_name=f"{name}.wake", log_dir=tmp_path / "w")
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
    slurm: SlurmScheduler, tmp_path: Path, campaign: str
) -> None:
    runs = tmp_path / "runs.txt"
    task = sh(tmp_path, f'echo "run ${{SLURM_RESTART_COUNT:-0}}" >> {runs}; sleep 300')
    (job,) = slurm.submit_array(
        [task], job_name=job_name(campaign, "validation", 1), resources=RES, parallelism=1
    )
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
    slurm: SlurmScheduler, tmp_path: Path, campaign: str
) -> None:
    """USR2 early in the run (a preemption notice): submitit checkpoints and requeues; the
    command, which ignores USR2 itself, runs again as a new attempt."""
    runs = tmp_path / "runs.txt"
    task = sh(tmp_path, f'echo "run ${{SLURM_RESTART_COUNT:-0}}" >> {runs}; sleep 300')
    (job,) = slurm.submit_array(
        [task],
        job_name=job_name(campaign, "validation", 1),
        resources=Resources(time_limit_min=30),  # USR2 within the first 20 min = preemption
        parallelism=1,
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
    slurm: SlurmScheduler, tmp_path: Path, campaign: str
) -> None:
    name = job_name(campaign, "validation", 1)
    for bad, message in [
        (Resources(partition="no-such-partition"), "unknown Slurm partition 'no-such-partition'"),
        (Resources(account="no-such-account"), "unknown Slurm account 'no-such-account'"),
        (Resources(time_limit_min=0), "invalid Slurm time limit 0"),
    ]:
        with pytest.raises(UsageError, match=message):
            slurm.submit_array([sh(tmp_path, "true")], job_name=name, resources=bad, parallelism=1)

    assert slurm.runner.calls["sbatch"] == 0
    assert slurm.find(f"rea.{campaign}.") == []


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
        slurm.submit_array(
            [sh(tmp_path, "true")], job_name="rea.x.validation.r1", resources=RES, parallelism=1
        )

    assert str(error.value).startswith("Slurm is not reachable (")
    assert "\n" not in str(error.value) and runner.calls["sbatch"] == 0


@pytest.mark.slow
def test_time_limit_ends_timeout_not_failed(
    slurm: SlurmScheduler, tmp_path: Path, campaign: str
) -> None:
    """submitit would end a non-requeued task FAILED 90 s early; rea's task lets Slurm end it."""
    (job,) = slurm.submit_array(
        [sh(tmp_path, "sleep 600")],
        job_name=job_name(campaign, "validation", 1),
        resources=Resources(time_limit_min=1),
        parallelism=1,
    )

    info = wait_for(slurm, [job], deadline_s=240)[job]

    assert info.state is JobState.TIMEOUT, info
