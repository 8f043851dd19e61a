"""The local backend's processes: detached runners outlive the submitter and leave nothing behind;
a killed runner does not leave jobs RUNNING forever; bounds and time limits hold."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from rea_cli.executor.local import LocalScheduler, records, runner
from rea_cli.executor.local.records import ArraySpec, JobRecord, TaskCommand
from rea_cli.executor.local.store import JobStore
from rea_cli.executor.scheduler import (
    ArrayRequest,
    JobInfo,
    JobState,
    Resources,
    Scheduler,
    TaskSpec,
)

RESOURCES = Resources(time_limit_min=5)
DEADLINE_S = 60.0
_PR_SET_CHILD_SUBREAPER = 36


def wait_terminal(scheduler: LocalScheduler, job_ids: Sequence[str]) -> dict[str, JobInfo]:
    end = time.monotonic() + DEADLINE_S
    while True:
        states = scheduler.states(job_ids)
        if all(i.state.is_terminal for i in states.values()):
            return states
        assert time.monotonic() < end, states
        time.sleep(0.1)


def wait_until(condition: object, what: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def in_proc_table(pid: int, start_ticks: int | None) -> bool:
    """Whether `pid` is still in the process table (running or zombie) as the recorded process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return start_ticks is None or int(stat[stat.rindex(")") + 2 :].split()[19]) == start_ticks


@pytest.fixture
def subreaper() -> Iterator[None]:
    """Make this process the reaper of orphaned descendants for the test.

    Detached runners are re-parented to init, which reaps them on a normal system; some
    containers' PID 1 never does, and would leave zombies that hide what we test.
    """
    if sys.platform != "linux":
        pytest.skip("PR_SET_CHILD_SUBREAPER is Linux only")
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    yield
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


_SUBMITTER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from rea_cli.executor.local import LocalScheduler
    from rea_cli.executor.scheduler import ArrayRequest, Resources, TaskSpec, WakeupRequest

    state, out = Path(sys.argv[1]), Path(sys.argv[2])
    code = "import sys, time, pathlib; time.sleep(0.5); pathlib.Path(sys.argv[1]).touch()"
    tasks = [TaskSpec([sys.executable, "-c", code, str(out / f"task{i}")], out, out / "logs")
             for i in range(2)]
    s = LocalScheduler(state)
    ids = s.submit_array(ArrayRequest("rea.t.validation.r1", tasks, Resources(), 2, workdir=out))
    wake_argv = [sys.executable, "-c", code.replace("0.5", "0"), str(out / "wake")]
    wake = s.submit_wakeup(
        WakeupRequest("rea.t.validation.r1.wake", wake_argv, Resources(time_limit_min=0),
                      log_dir=out / "logs", workdir=out),
        ids,
    )
    print(json.dumps([*ids, wake]))
    """
)


def test_jobs_outlive_the_submitter_and_leave_no_process(tmp_path: Path, subreaper: None) -> None:
    state, out = tmp_path / "state", tmp_path / "out"
    out.mkdir()

    submitter = subprocess.run(
        [sys.executable, "-c", _SUBMITTER, str(state), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    job_ids = json.loads(submitter.stdout)

    scheduler = LocalScheduler(state)
    states = wait_terminal(scheduler, job_ids)
    assert all(i.state is JobState.COMPLETED for i in states.values()), states
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["task0", "task1", "wake"]

    recorded = [JobStore(state).read(j) for j in job_ids]
    runners = {r.runner for r in recorded if r and r.runner}
    tasks = {r.task for r in recorded if r and r.task}
    assert len(runners) == 2 and len(tasks) == 3
    for proc in runners:
        # Orphaned runners were re-parented to us; each must exit by itself once its jobs end.
        wait_until(lambda p=proc: os.waitpid(p.pid, os.WNOHANG)[0] == p.pid, f"runner {proc.pid}")
    left = [p.pid for p in runners | tasks if in_proc_table(p.pid, p.start_ticks)]
    assert left == [], f"processes left behind (running or zombie): {left}"


def _task(tmp_path: Path, argv: list[str]) -> TaskSpec:
    return TaskSpec(argv, tmp_path, tmp_path / "logs")


def _array(
    tmp_path: Path, tasks: Sequence[TaskSpec], parallelism: int, *, hold: bool = False
) -> ArrayRequest:
    return ArrayRequest("rea.t.v.r1", tasks, RESOURCES, parallelism, workdir=tmp_path, hold=hold)


def test_killed_runner_does_not_leave_jobs_running(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "state")
    sleeper = _task(tmp_path, ["sleep", "60"])
    first, second = scheduler.submit_array(_array(tmp_path, [sleeper, sleeper], parallelism=1))
    wait_until(lambda: scheduler.states([first])[first].state is JobState.RUNNING, "RUNNING")
    record = scheduler.store.read(first)
    assert record and record.runner and record.task

    os.kill(record.runner.pid, signal.SIGKILL)
    wait_until(
        lambda: not in_proc_table(record.runner.pid, None) or _zombie(record.runner.pid), "kill"
    )

    # The task still runs without its runner: that is the truth, so it stays RUNNING...
    states = scheduler.states([first, second])
    assert states[first].state is JobState.RUNNING
    # ...but the job it would have started next never will.
    assert states[second].state is JobState.NODE_FAIL
    assert "before the job started" in (states[second].reason or "")

    os.killpg(record.task.pid, signal.SIGKILL)
    wait_until(lambda: scheduler.states([first])[first].state.is_terminal, "terminal")
    info = scheduler.states([first])[first]
    assert info.state is JobState.NODE_FAIL and "runner process died" in (info.reason or "")


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def test_max_parallel_bounds_every_submission_together(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "state", max_parallel=1)
    active, counts = tmp_path / "active", tmp_path / "counts"
    active.mkdir()
    counts.mkdir()
    code = (
        "import sys, time, pathlib\n"
        "active, me = pathlib.Path(sys.argv[1]), sys.argv[2]\n"
        "(active / me).touch()\n"
        "seen = 0\n"
        "for _ in range(3):\n"
        "    seen = max(seen, len(list(active.iterdir())))\n"
        "    time.sleep(0.1)\n"
        "(active / me).unlink()\n"
        "pathlib.Path(sys.argv[3]).write_text(str(seen))\n"
    )
    ids = []
    for a in range(2):
        tasks = [
            _task(
                tmp_path,
                [sys.executable, "-c", code, str(active), f"{a}{i}", str(counts / f"{a}{i}")],
            )
            for i in range(2)
        ]
        ids += scheduler.submit_array(_array(tmp_path, tasks, parallelism=2))

    states = wait_terminal(scheduler, ids)
    assert all(i.state is JobState.COMPLETED for i in states.values())
    assert max(int(p.read_text()) for p in counts.iterdir()) == 1


def test_missing_command_fails_like_the_shell(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "state")
    (job_id,) = scheduler.submit_array(
        _array(tmp_path, [_task(tmp_path, ["/nonexistent/rea-command"])], parallelism=1)
    )
    info = wait_terminal(scheduler, [job_id])[job_id]
    assert (info.state, info.exit_code) == (JobState.FAILED, 127)
    assert "rea-command" in (info.reason or "")


def test_runner_ends_a_job_at_its_time_limit(tmp_path: Path) -> None:
    """Run the runner loop in this process (no detaching) with a sub-second time limit."""
    store = JobStore(tmp_path / "state")
    array_id = store.new_array_id()
    job_id = records.format_job_id(array_id, 0)
    spec = ArraySpec(
        array_id,
        "rea.t.v.r1",
        [job_id],
        [TaskCommand(["sleep", "60"], str(tmp_path), {})],
        parallelism=1,
        time_limit_s=0.3,
    )
    store.write_spec(spec)
    store.write(
        JobRecord(
            job_id=job_id,
            name=spec.name,
            state=JobState.PENDING,
            submitted_at=records.now_iso(),
            node="here",
            stdout=str(tmp_path / "out"),
            stderr=str(tmp_path / "err"),
        )
    )

    runner.run(store, spec.array_id)

    record = store.read(job_id)
    assert record is not None
    assert (record.state, record.reason) == (JobState.TIMEOUT, "time limit reached")


def test_cancel_while_held_stops_the_runner(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "state")
    ids = scheduler.submit_array(_array(tmp_path, [_task(tmp_path, ["true"])], 1, hold=True))
    wait_until(
        lambda: (r := scheduler.store.read(ids[0])) is not None and r.runner is not None, "claim"
    )
    runner_proc = scheduler.store.read(ids[0]).runner  # type: ignore[union-attr]

    scheduler.cancel(ids)

    assert scheduler.states(ids)[ids[0]].state is JobState.CANCELLED
    assert runner_proc is not None
    wait_until(
        lambda: (
            not in_proc_table(runner_proc.pid, runner_proc.start_ticks) or _zombie(runner_proc.pid)
        ),
        "the runner to exit",
    )


def test_local_scheduler_is_a_scheduler(tmp_path: Path) -> None:
    assert isinstance(LocalScheduler(tmp_path), Scheduler)


def test_enforced_limit_adds_the_kill_grace_and_no_limit_stays_none(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path)
    grace_min = (runner.KILL_GRACE_S + runner.POLL_S) / 60

    assert scheduler.enforced_limit_min(30) >= 30 + grace_min
    assert scheduler.enforced_limit_min(0.5) >= 0.5 + grace_min  # fractional: enforced in s
    assert scheduler.enforced_limit_min(0) == 0.0  # 0: no limit on this backend, none to add
