"""What every Scheduler backend must do (see rea_cli/executor/scheduler.py).

Tasks are tiny Python or shell commands that leave files behind; tests poll with deadlines and
assert what happened, never how fast.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from rea_cli.executor.scheduler import (
    ArrayRequest,
    JobInfo,
    JobState,
    Resources,
    Scheduler,
    SubmissionRequest,
    TaskSpec,
    WakeupRequest,
    campaign_job_prefix,
    workspace_tag,
)

RESOURCES = Resources(time_limit_min=5, cpus_per_task=1)
WAKE_RESOURCES = Resources(time_limit_min=5, cpus_per_task=1)
DEADLINE_S = 120.0

# The id of the job a task runs in, on either backend.
_JOB_ID = (
    "import os; e = os.environ; "
    "jid = e.get('REA_JOB_ID') or ("
    "e['SLURM_ARRAY_JOB_ID'] + '_' + e['SLURM_ARRAY_TASK_ID'] "
    "if 'SLURM_ARRAY_TASK_ID' in e else e['SLURM_JOB_ID']); "
)


def py(code: str, *args: object) -> list[str]:
    return [sys.executable, "-c", code, *map(str, args)]


def task(tmp_path: Path, argv: Sequence[str], **kwargs: object) -> TaskSpec:
    workdir = kwargs.pop("workdir", tmp_path)
    env = kwargs.pop("env", {})
    return TaskSpec(argv, workdir, tmp_path / "logs", env)  # type: ignore[arg-type]


def array(
    tmp_path: Path,
    job_name: str,
    tasks: Sequence[TaskSpec],
    parallelism: int,
    *,
    hold: bool = False,
    resources: Resources = RESOURCES,
) -> ArrayRequest:
    """The array request of one round; the scheduler starts its jobs in the round's folder
    (a path with a space: it must reach sbatch quoted)."""
    workdir = tmp_path / "round dir"
    workdir.mkdir(exist_ok=True)
    return ArrayRequest(job_name, tasks, resources, parallelism, workdir=workdir, hold=hold)


def wakeup(
    tmp_path: Path, job_name: str, argv: Sequence[str], workdir: Path | None = None
) -> WakeupRequest:
    """The wake-up request of the round whose array is `job_name`."""
    return WakeupRequest(
        f"{job_name}.wake",
        argv,
        WAKE_RESOURCES,
        log_dir=tmp_path / "logs",
        workdir=workdir or tmp_path,
    )


def wait_for(
    scheduler: Scheduler,
    job_ids: Sequence[str],
    done: Callable[[JobInfo], bool] = lambda info: info.state.is_terminal,
    deadline_s: float = DEADLINE_S,
) -> dict[str, JobInfo]:
    """Poll until `done` holds for every job; fail naming the jobs that never got there."""
    end = time.monotonic() + deadline_s
    while True:
        states = scheduler.states(job_ids)
        if all(done(states[j]) for j in job_ids):
            return states
        if time.monotonic() > end:
            waiting = {j: (i.state.value, i.reason) for j, i in states.items() if not done(i)}
            raise AssertionError(f"jobs did not get there in {deadline_s:.0f} s: {waiting}")
        time.sleep(0.2)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return not Path("/proc").is_dir()
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie is not running


def test_submit_array_returns_one_id_per_task_in_order(
    scheduler: Scheduler, tmp_path: Path, job_name: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    write_id = _JOB_ID + "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(jid)"
    tasks = [task(tmp_path, py(write_id, out / f"{i}.txt")) for i in range(3)]

    ids = scheduler.submit_array(array(tmp_path, job_name, tasks, parallelism=3))

    assert len(ids) == 3 and len(set(ids)) == 3
    states = wait_for(scheduler, ids)
    assert [states[j].state for j in ids] == [JobState.COMPLETED] * 3
    assert [(out / f"{i}.txt").read_text() for i in range(3)] == ids


def test_parallelism_bound_is_respected(
    scheduler: Scheduler, tmp_path: Path, job_name: str
) -> None:
    active, counts = tmp_path / "active", tmp_path / "counts"
    active.mkdir()
    counts.mkdir()
    # Each task is listed in `active` while it runs and records the most it saw there at once.
    code = (
        "import sys, time, pathlib\n"
        "active, me, out = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])\n"
        "(active / me).touch()\n"
        "seen = 0\n"
        "for _ in range(4):\n"
        "    seen = max(seen, len(list(active.iterdir())))\n"
        "    time.sleep(0.1)\n"
        "(active / me).unlink()\n"
        "out.write_text(str(seen))\n"
    )
    tasks = [task(tmp_path, py(code, active, i, counts / f"{i}.txt")) for i in range(5)]

    ids = scheduler.submit_array(array(tmp_path, job_name, tasks, parallelism=2))

    states = wait_for(scheduler, ids)
    assert all(states[j].state is JobState.COMPLETED for j in ids)
    seen = [int((counts / f"{i}.txt").read_text()) for i in range(5)]
    assert 1 <= max(seen) <= 2, seen


def test_env_and_workdir_are_honoured(scheduler: Scheduler, tmp_path: Path, job_name: str) -> None:
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    code = (
        "import json, os\n"
        "json.dump({'cwd': os.getcwd(), 'value': os.environ.get('REA_CONTRACT_VALUE')},"
        " open('seen.json', 'w'))\n"
    )
    spec = task(tmp_path, py(code), workdir=workdir, env={"REA_CONTRACT_VALUE": "a b=c"})

    (job_id,) = scheduler.submit_array(array(tmp_path, job_name, [spec], parallelism=1))

    assert wait_for(scheduler, [job_id])[job_id].state is JobState.COMPLETED
    seen = json.loads((workdir / "seen.json").read_text())
    assert Path(seen["cwd"]).resolve() == workdir.resolve()
    assert seen["value"] == "a b=c"


def test_failing_task_is_failed_with_its_exit_code(
    scheduler: Scheduler, tmp_path: Path, job_name: str
) -> None:
    tasks = [task(tmp_path, ["sh", "-c", "exit 3"]), task(tmp_path, ["sh", "-c", "exit 0"])]

    failing, passing = scheduler.submit_array(array(tmp_path, job_name, tasks, parallelism=2))

    states = wait_for(scheduler, [failing, passing])
    assert (states[failing].state, states[failing].exit_code) == (JobState.FAILED, 3)
    assert (states[passing].state, states[passing].exit_code) == (JobState.COMPLETED, 0)
    # Terminal states stay terminal, and the same, however often they are asked for.
    again = scheduler.states([failing, passing])
    assert {j: i.state for j, i in again.items()} == {j: i.state for j, i in states.items()}


def _wake_argv(markers: Path, out: Path) -> list[str]:
    """A wake-up that records how many tasks had finished (left a marker) when it ran."""
    code = "import sys, pathlib; m, o = map(pathlib.Path, sys.argv[1:]); "
    code += "o.write_text(str(len(list(m.iterdir()))))"
    return py(code, markers, out)


def _marking_tasks(tmp_path: Path, markers: Path) -> list[TaskSpec]:
    """Three tasks of different lengths and outcomes, each leaving a marker as it ends."""
    code = (
        "import sys, time, pathlib\n"
        "time.sleep(float(sys.argv[2]))\n"
        "pathlib.Path(sys.argv[1]).touch()\n"
        "sys.exit(int(sys.argv[3]))\n"
    )
    runs = [(0.2, 0), (1.0, 3), (0.5, 1)]
    return [task(tmp_path, py(code, markers / f"{i}", s, rc)) for i, (s, rc) in enumerate(runs)]


def test_wakeup_runs_after_every_task_ended_whatever_the_outcome(
    scheduler: Scheduler, tmp_path: Path, job_name: str
) -> None:
    markers, out = tmp_path / "markers", tmp_path / "wake.txt"
    markers.mkdir()
    ids = scheduler.submit_array(
        array(tmp_path, job_name, _marking_tasks(tmp_path, markers), parallelism=3)
    )

    wake = scheduler.submit_wakeup(wakeup(tmp_path, job_name, _wake_argv(markers, out)), ids)

    states = wait_for(scheduler, [*ids, wake])
    assert states[wake].state is JobState.COMPLETED
    assert out.read_text() == "3"
    assert [states[j].state for j in ids] == [JobState.COMPLETED, JobState.FAILED, JobState.FAILED]


def test_wakeup_runs_when_every_task_already_ended(
    scheduler: Scheduler, tmp_path: Path, job_name: str
) -> None:
    markers, out = tmp_path / "markers", tmp_path / "wake.txt"
    markers.mkdir()
    ids = scheduler.submit_array(
        array(tmp_path, job_name, _marking_tasks(tmp_path, markers), parallelism=3)
    )
    wait_for(scheduler, ids)

    wake = scheduler.submit_wakeup(wakeup(tmp_path, job_name, _wake_argv(markers, out)), ids)

    assert wait_for(scheduler, [wake])[wake].state is JobState.COMPLETED
    assert out.read_text() == "3"


def test_wakeup_runs_in_the_workdir_of_its_request(
    scheduler: Scheduler, tmp_path: Path, job_name: str
) -> None:
    """Not in the submitting process's directory: a wake-up must not depend on where (or
    whether) the CLI that submitted it ran."""
    workdir, out = tmp_path / "wake dir", tmp_path / "wake-cwd.txt"
    workdir.mkdir()
    ids = scheduler.submit_array(
        array(tmp_path, job_name, [task(tmp_path, ["sh", "-c", "exit 0"])], parallelism=1)
    )
    code = "import os, sys; open(sys.argv[1], 'w').write(os.getcwd())"

    wake = scheduler.submit_wakeup(wakeup(tmp_path, job_name, py(code, out), workdir), ids)

    assert wait_for(scheduler, [*ids, wake])[wake].state is JobState.COMPLETED
    assert Path(out.read_text()).resolve() == workdir.resolve() != Path.cwd().resolve()


def test_held_tasks_start_only_after_release(
    scheduler: Scheduler, tmp_path: Path, job_name: str
) -> None:
    markers, out = tmp_path / "markers", tmp_path / "wake.txt"
    markers.mkdir()
    ids = scheduler.submit_array(
        array(tmp_path, job_name, _marking_tasks(tmp_path, markers), parallelism=3, hold=True)
    )
    wake = scheduler.submit_wakeup(wakeup(tmp_path, job_name, _wake_argv(markers, out)), ids)

    # Held: nothing starts (checked for a moment), and the wake-up waits for them.
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        states = scheduler.states([*ids, wake])
        assert all(states[j].state in (JobState.HELD, JobState.PENDING) for j in ids), states
        assert states[wake].state is JobState.PENDING
        time.sleep(0.3)
    assert not any(markers.iterdir())

    scheduler.release(ids)

    states = wait_for(scheduler, [*ids, wake])
    assert states[wake].state is JobState.COMPLETED
    assert out.read_text() == "3"


def test_find_lists_submitted_jobs_by_name_prefix(
    scheduler: Scheduler, tmp_path: Path, job_name: str, ws_tag: str, campaign_id: str
) -> None:
    prefix = campaign_job_prefix(ws_tag, campaign_id)
    assert job_name.startswith(prefix)
    tasks = [task(tmp_path, ["sh", "-c", "exit 0"]) for _ in range(2)]
    ids = scheduler.submit_array(array(tmp_path, job_name, tasks, parallelism=2, hold=True))
    wake = scheduler.submit_wakeup(wakeup(tmp_path, job_name, ["sh", "-c", "exit 0"]), ids)

    pending = {j.job_id: j for j in scheduler.find(prefix)}
    scheduler.release(ids)
    wait_for(scheduler, [*ids, wake])
    ended = {j.job_id: j for j in scheduler.find(prefix)}

    for found in (pending, ended):
        assert {*ids, wake} <= set(found), found
        assert all(info.name.startswith(prefix) for info in found.values())
    assert found[wake].name == f"{job_name}.wake" and found[ids[0]].name == job_name
    assert all(ended[j].state is JobState.COMPLETED for j in (*ids, wake))
    assert scheduler.find(prefix + "no-such-phase.") == []
    # The same campaign id in another workspace of the same user is another name space.
    other = campaign_job_prefix(workspace_tag(tmp_path / "other-workspace"), campaign_id)
    assert other != prefix and scheduler.find(other) == []


def test_cancel_running_and_pending_jobs(
    scheduler: Scheduler, tmp_path: Path, job_name: str
) -> None:
    pids, out = tmp_path / "pids", tmp_path / "wake.txt"
    pids.mkdir()
    # A task that starts a child and waits: cancelling must stop both.
    code = (
        "import subprocess, sys, time, pathlib\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "import os; pathlib.Path(sys.argv[1]).write_text(f'{os.getpid()} {child.pid}')\n"
        "time.sleep(300)\n"
    )
    tasks = [task(tmp_path, py(code, pids / f"{i}.txt")) for i in range(3)]
    ids = scheduler.submit_array(array(tmp_path, job_name, tasks, parallelism=1))
    wake = scheduler.submit_wakeup(wakeup(tmp_path, job_name, _wake_argv(pids, out)), ids)
    wait_for(scheduler, ids[:1], lambda info: info.state is JobState.RUNNING)
    end = time.monotonic() + DEADLINE_S
    while not (pids / "0.txt").exists() and time.monotonic() < end:
        time.sleep(0.1)
    started = [int(p) for p in (pids / "0.txt").read_text().split()]

    scheduler.cancel([*ids, wake])

    states = wait_for(scheduler, [*ids, wake])
    assert {j: states[j].state for j in (*ids, wake)} == dict.fromkeys(
        (*ids, wake), JobState.CANCELLED
    )
    end = time.monotonic() + 30
    while any(map(pid_alive, started)) and time.monotonic() < end:
        time.sleep(0.1)
    assert not [pid for pid in started if pid_alive(pid)], "a cancelled task is still running"
    assert sorted(p.name for p in pids.iterdir()) == ["0.txt"], "a pending task started"
    assert not out.exists(), "the cancelled wake-up ran"


def test_unknown_job_ids_are_unknown(scheduler: Scheduler) -> None:
    ids = ["99999999", "99999999_3"]

    states = scheduler.states(ids)

    assert {j: states[j].state for j in ids} == dict.fromkeys(ids, JobState.UNKNOWN)


def test_cancelling_ended_or_unknown_jobs_is_not_an_error(
    scheduler: Scheduler, tmp_path: Path, job_name: str
) -> None:
    (job_id,) = scheduler.submit_array(
        array(tmp_path, job_name, [task(tmp_path, ["sh", "-c", "exit 0"])], parallelism=1)
    )
    wait_for(scheduler, [job_id])

    scheduler.cancel([job_id, "99999999"])

    assert scheduler.states([job_id])[job_id].state is JobState.COMPLETED


def test_render_shows_every_task_and_the_wakeup_and_submits_nothing(
    scheduler: Scheduler, tmp_path: Path, job_name: str, ws_tag: str, campaign_id: str
) -> None:
    """The dry run is the request: each task's command line (with its environment) and the
    wake-up's command, exactly as they will run; rendering submits nothing."""
    tasks = [
        task(tmp_path / f"trial {i}", py("print('it''s')", f"spec {i}.json"), env={"K": "a b"})
        for i in range(3)
    ]
    wake_argv = [sys.executable, "-m", "rea_cli", "resume", f"{campaign_id} now"]
    request = SubmissionRequest(
        array(tmp_path, job_name, tasks, parallelism=2, hold=True),
        wakeup(tmp_path, job_name, wake_argv),
    )

    rendered = scheduler.render(request)

    text = "\n".join(f"{title}\n{body}" for title, body in rendered)
    for t in tasks:
        assert shlex.join(t.argv) in text, (t.argv, text)
        assert shlex.quote(str(t.workdir)) in text
    assert text.count("K='a b'") == len(tasks)
    assert shlex.join(wake_argv) in text
    assert job_name in text and f"{job_name}.wake" in text
    assert scheduler.find(campaign_job_prefix(ws_tag, campaign_id)) == []


@pytest.mark.parametrize("limit_min", [0.25, 1, 5, 90.5])
def test_enforced_limit_is_at_least_the_limit(scheduler: Scheduler, limit_min: float) -> None:
    enforced = scheduler.enforced_limit_min(limit_min)

    assert enforced >= limit_min
    assert scheduler.enforced_limit_min(limit_min + 1) >= enforced  # a longer limit never less


@pytest.mark.slow
def test_a_task_ignoring_sigterm_ends_within_its_enforced_limit(
    scheduler: Scheduler, tmp_path: Path, job_name: str, request: pytest.FixtureRequest
) -> None:
    """What the budget reserves for a task (enforced_limit_min) bounds what it really runs,
    for a task that ignores the polite signal and for one that obeys it; both end TIMEOUT, not
    FAILED (on Slurm, submitit would end a non-requeued task FAILED 90 s early: rea's task lets
    Slurm end it). A fractional limit is valid everywhere."""
    limit_min = 0.02  # local: 1.2 s; Slurm rounds up to 1 min
    stubborn = task(tmp_path, ["sh", "-c", "trap '' TERM; sleep 600"])
    polite = task(tmp_path, ["sleep", "600"])
    resources = Resources(time_limit_min=limit_min, cpus_per_task=1)
    enforced = scheduler.enforced_limit_min(limit_min)

    ids = scheduler.submit_array(
        array(tmp_path, job_name, [stubborn, polite], parallelism=2, resources=resources)
    )

    infos = wait_for(scheduler, ids, deadline_s=enforced * 60 + DEADLINE_S)
    for info in infos.values():
        assert info.state is JobState.TIMEOUT, info
        assert info.elapsed_s is not None
        assert limit_min * 60 <= info.elapsed_s <= enforced * 60, (info.elapsed_s, enforced * 60)
