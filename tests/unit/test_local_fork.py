"""Trial tasks of the local backend start by fork from a runner that imported the trainer once.

A forked trial must record what an exec'd one records (states, exit codes, attempt files, logs),
hold none of the runner's files, and die with everything it started on cancel and at its time
limit. REA_LOCAL_FORK=0 starts it as a new process instead. Real trainer, real tiny data.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ranking_models.config import apply_delta, default_config
from rea_cli.executor import backends
from rea_cli.executor.local import LocalScheduler, procs, records
from rea_cli.executor.local.forking import ForkedTask, fork_enabled, trial_spec
from rea_cli.executor.local.records import ArraySpec, JobRecord, TaskCommand
from rea_cli.executor.scheduler import ArrayRequest, JobInfo, JobState, Resources, TaskSpec
from tests.unit.test_local_processes import in_proc_table, subreaper  # noqa: F401 - fixture

RESOURCES = Resources(time_limit_min=5)
DEADLINE_S = 120.0
TINY_DATA = {"name": "synthetic", "n_rows": 2000, "n_categorical": 3, "n_numerical": 2}
# The tests share two cores with other work: one thread each, CPU only.
TRIAL_ENV = {"REA_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1", "REA_DEVICE": "cpu"}
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", re.MULTILINE)


def config(family: str = "fm", **train: Any) -> dict[str, Any]:
    delta = {"train.epochs": 1, "train.batch_size": 256, "model.embedding_dim": 4}
    return apply_delta(
        default_config(family), {**delta, **{f"train.{k}": v for k, v in train.items()}}
    )


def trial_task(folder: Path, trial_id: str, cfg: dict[str, Any], env: dict[str, str]) -> TaskSpec:
    """A trial as a phase submits it: `python -m ranking_models.train SPEC` in its folder."""
    trial = folder / trial_id
    trial.mkdir(parents=True)
    spec = {
        "schema": 1,
        "campaign_id": "c-fork",
        "trial_id": trial_id,
        "hypothesis_id": "baseline",
        "phase": "validation",
        "seed": 0,
        "config": cfg,
        "data": TINY_DATA,
        "checkpoint_dir": str(trial / "checkpoint"),
        "attempts_dir": str(trial / "attempts"),
    }
    (trial / "spec.json").write_text(json.dumps(spec))
    return TaskSpec(backends.trial_argv(trial / "spec.json"), trial, trial / "logs", env)


def env_for(tmp_path: Path, fork: bool) -> dict[str, str]:
    env = {**TRIAL_ENV, "REA_DATA_DIR": str(tmp_path / "data")}
    return env if fork else {**env, "REA_LOCAL_FORK": "0"}


def wait_for(
    scheduler: LocalScheduler, job_ids: Sequence[str], done: Any = lambda i: i.state.is_terminal
) -> dict[str, JobInfo]:
    end = time.monotonic() + DEADLINE_S
    while True:
        states = scheduler.states(job_ids)
        if all(done(i) for i in states.values()):
            return states
        assert time.monotonic() < end, states
        time.sleep(0.1)


def task_of(scheduler: LocalScheduler, job_id: str) -> records.ProcIdentity:
    record = scheduler.store.read(job_id)
    assert record is not None and record.task is not None
    return record.task


def runner_log(scheduler: LocalScheduler, job_id: str) -> str:
    parsed = records.parse_job_id(job_id)
    assert parsed is not None
    return scheduler.store.runner_log(parsed[0]).read_text()


def metrics(task: TaskSpec) -> list[dict[str, Any]]:
    path = Path(task.workdir) / "attempts" / "1" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


# --- pure parts and the process handle -----------------------------------------------------


def test_only_the_exact_trial_command_is_forked() -> None:
    spec = "/w/trials/t/spec.json"
    assert trial_spec(backends.trial_argv(Path(spec))) == spec
    assert trial_spec([sys.executable, "-m", "ranking_models.train", spec, "--x"]) is None
    assert trial_spec(["/other/python", "-m", "ranking_models.train", spec]) is None
    assert trial_spec([sys.executable, "-c", "import ranking_models.train", spec]) is None
    assert trial_spec([sys.executable, "-m", "rea_cli", "resume", "c1"]) is None


def test_rea_local_fork_0_turns_forking_off() -> None:
    assert fork_enabled({}) and fork_enabled({"REA_LOCAL_FORK": "1"})
    assert not fork_enabled({"REA_LOCAL_FORK": "0"})


@pytest.mark.parametrize(("how", "returncode"), [("exit 3", 3), ("SIGKILL", -9)])
def test_forked_task_reports_its_end_like_popen(how: str, returncode: int) -> None:
    pid = os.fork()
    if pid == 0:
        if how == "SIGKILL":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)
    task = ForkedTask(pid)
    end = time.monotonic() + 10
    while task.poll() is None:
        assert time.monotonic() < end
        time.sleep(0.01)
    assert task.returncode == returncode
    assert not in_proc_table(pid, None), "the forked task was not reaped"


# --- through the real scheduler --------------------------------------------------------------


def _outcome(scheduler: LocalScheduler, job_id: str, task: TaskSpec) -> dict[str, Any]:
    """What a trial leaves behind, minus what differs from run to run (times, pids)."""
    info = scheduler.states([job_id])[job_id]
    folder = Path(task.workdir) / "attempts" / "1"
    result = json.loads((folder / "result.json").read_text())
    attempt = json.loads((folder / "attempt.json").read_text())
    assert attempt["job_id"] == job_id and attempt["pid"] == task_of(scheduler, job_id).pid
    logs = Path(task.log_dir)
    return {
        "state": (info.state, info.exit_code, info.reason),
        "files": sorted(p.name for p in folder.iterdir()),
        "result": {k: result[k] for k in ("status", "failure", "valid", "test", "job_id")},
        "result_keys": sorted(result),
        "events": [(e["event"], e.get("step"), e.get("loss"), e.get("auc")) for e in metrics(task)],
        "stdout": (logs / f"{job_id}.out").read_text(),
        "stderr": _TIMESTAMP.sub("", (logs / f"{job_id}.err").read_text()),
    }


@pytest.mark.slow
@pytest.mark.usefixtures("subreaper")
def test_forked_trials_record_exactly_what_execd_trials_do(tmp_path: Path) -> None:
    nan = {"lr_dense": 1e30, "lr_sparse": 1e30, "loss_explosion_factor": None}
    bad = config()
    bad["train"]["epochs"] = 0
    cases = {"ok": config(), "bad-config": bad, "diverges": config("deepfm", **nan)}
    outcomes: dict[bool, list[dict[str, Any]]] = {}
    for fork in (True, False):
        folder = tmp_path / ("fork" if fork else "exec")
        scheduler = LocalScheduler(folder / "state")
        env = env_for(tmp_path, fork)
        tasks = [trial_task(folder, name, cfg, env) for name, cfg in cases.items()]
        ids = scheduler.submit_array(
            ArrayRequest("rea.t.validation.r1", tasks, RESOURCES, 2, workdir=Path("/tmp"))
        )
        wait_for(scheduler, ids)
        outcomes[fork] = [_outcome(scheduler, j, t) for j, t in zip(ids, tasks, strict=True)]
        log = runner_log(scheduler, ids[0])
        assert all((f"job {j}: forked pid" in log) is fork for j in ids), log
        _runner_exits_and_leaves_no_process(scheduler, ids)

    # Job ids differ between the two arrays only in their array number.
    exec_outcomes = json.loads(json.dumps(outcomes[False], default=str).replace('"2_', '"1_'))
    assert json.loads(json.dumps(outcomes[True], default=str)) == exec_outcomes
    ok, bad_config, diverges = outcomes[True]
    assert ok["state"] == (JobState.COMPLETED, 0, None)
    assert bad_config["state"] == (JobState.FAILED, 2, "exit code 2")
    assert diverges["state"] == (JobState.FAILED, 3, "exit code 3")
    assert ok["files"] == ["attempt.json", "metrics.jsonl", "result.json"]
    assert "invalid config" in bad_config["stderr"] and "nan_loss" in diverges["stderr"]


def _runner_exits_and_leaves_no_process(scheduler: LocalScheduler, job_ids: list[str]) -> None:
    recorded = [scheduler.store.read(j) for j in job_ids]
    runner = next(r.runner for r in recorded if r and r.runner)
    end = time.monotonic() + DEADLINE_S
    while os.waitpid(runner.pid, os.WNOHANG)[0] != runner.pid:  # re-parented to us: reap it
        assert time.monotonic() < end, "the runner did not exit"
        time.sleep(0.05)
    tasks = [r.task for r in recorded if r and r.task]
    left = [t.pid for t in tasks if in_proc_table(t.pid, t.start_ticks)]
    assert left == [], f"tasks left behind (running or zombie): {left}"


def open_files(pid: int) -> dict[int, str]:
    """The files a process holds, by descriptor. The trainer opens and closes files while it
    runs (data shards, its metrics log), so a descriptor listed may be gone when it is read."""
    files = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            files[int(fd.name)] = os.readlink(fd)
        except FileNotFoundError:
            continue
    return files


@pytest.mark.slow
@pytest.mark.parametrize("fork", [True, False], ids=["fork", "REA_LOCAL_FORK=0"])
def test_cancel_kills_running_trials_which_hold_none_of_the_runners_files(
    tmp_path: Path, fork: bool
) -> None:
    scheduler = LocalScheduler(tmp_path / "state", max_parallel=2, cancel_grace_s=10.0)
    long = config(epochs=1000)
    tasks = [trial_task(tmp_path, f"t{i}", long, env_for(tmp_path, fork)) for i in range(2)]
    ids = scheduler.submit_array(
        ArrayRequest("rea.t.validation.r1", tasks, RESOURCES, 2, workdir=Path("/tmp"))
    )
    wait_for(scheduler, ids, lambda i: i.state is JobState.RUNNING)
    end = time.monotonic() + DEADLINE_S
    while not all(any(e["event"] == "train" for e in metrics(t)) for t in tasks):
        assert time.monotonic() < end, "the trials never started training"
        time.sleep(0.1)

    for job_id, task in zip(ids, tasks, strict=True):
        pid = task_of(scheduler, job_id).pid
        started_as = "rea_cli.executor.local.runner" if fork else "-m ranking_models.train"
        assert started_as in cmdline(pid)
        if fork:
            assert Path(f"/proc/{pid}/comm").read_text().strip() == "rea-trial"
        assert os.getsid(pid) == pid and os.getpgid(pid) == pid  # killpg reaches all it starts
        files = open_files(pid)
        logs = Path(task.log_dir)
        assert files[0] == os.devnull
        assert (files[1], files[2]) == (str(logs / f"{job_id}.out"), str(logs / f"{job_id}.err"))
        held = [f for f in files.values() if f.startswith(str(scheduler.state_dir))]
        assert held == [], f"job {job_id} holds the runner's files (slot/array locks): {held}"

    scheduler.cancel(ids)

    states = wait_for(scheduler, ids)
    for job_id, task in zip(ids, tasks, strict=True):
        # The trainer's SIGTERM handler records the signal and exits 128 + 15.
        assert (states[job_id].state, states[job_id].exit_code) == (JobState.CANCELLED, 143)
        assert metrics(task)[-1]["event"] == "signal"
        assert not procs.group_alive(task_of(scheduler, job_id).pid)


def _submit_with_time_limit(
    scheduler: LocalScheduler, tasks: list[TaskSpec], time_limit_s: float
) -> list[str]:
    """Submit with a sub-minute time limit (Resources has whole minutes): write the submission
    as the backend does and start the real detached runner on it."""
    store = scheduler.store
    array_id = store.new_array_id()
    ids = [records.format_job_id(array_id, i) for i in range(len(tasks))]
    commands = [TaskCommand([str(a) for a in t.argv], str(t.workdir), dict(t.env)) for t in tasks]
    store.write_spec(ArraySpec(array_id, "rea.t.v.r1", ids, commands, 1, None, time_limit_s))
    for job_id, task in zip(ids, tasks, strict=True):
        log = Path(task.log_dir)
        store.write(
            JobRecord(
                job_id,
                "rea.t.v.r1",
                JobState.PENDING,
                records.now_iso(),
                "here",
                str(log / f"{job_id}.out"),
                str(log / f"{job_id}.err"),
            )
        )
    argv = [sys.executable, "-m", "rea_cli.executor.local.runner", str(store.root), str(array_id)]
    with open(store.runner_log(array_id), "ab") as err:
        subprocess.run(argv, check=True, timeout=30, stdin=subprocess.DEVNULL, stderr=err)
    return ids


@pytest.mark.slow
def test_a_forked_trial_ends_timeout_at_its_time_limit(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "state")
    task = trial_task(tmp_path, "t", config(epochs=1000), env_for(tmp_path, True))

    (job_id,) = _submit_with_time_limit(scheduler, [task], time_limit_s=2.0)

    info = wait_for(scheduler, [job_id])[job_id]
    assert (info.state, info.exit_code, info.reason) == (
        JobState.TIMEOUT,
        143,
        "time limit reached",
    )
    assert f"job {job_id}: forked pid" in runner_log(scheduler, job_id)
    assert not procs.group_alive(task_of(scheduler, job_id).pid)


@pytest.mark.slow
def test_a_forked_trial_killed_by_a_signal_fails_with_it(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "state")
    task = trial_task(tmp_path, "t", config(epochs=1000), env_for(tmp_path, True))
    (job_id,) = scheduler.submit_array(
        ArrayRequest("rea.t.validation.r1", [task], RESOURCES, 1, workdir=Path("/tmp"))
    )
    wait_for(scheduler, [job_id], lambda i: i.state is JobState.RUNNING)

    os.kill(task_of(scheduler, job_id).pid, signal.SIGKILL)

    info = wait_for(scheduler, [job_id])[job_id]
    assert (info.state, info.exit_code) == (JobState.FAILED, 137)
    assert info.reason == "killed by signal SIGKILL (9)"
    assert f"job {job_id}: forked pid" in runner_log(scheduler, job_id)


@pytest.mark.slow
@pytest.mark.parametrize("fork", [True, False], ids=["fork", "REA_LOCAL_FORK=0"])
def test_a_trial_whose_folder_is_gone_fails_to_start_like_a_missing_command(
    tmp_path: Path, fork: bool
) -> None:
    scheduler = LocalScheduler(tmp_path / "state")
    task = trial_task(tmp_path, "t", config(), env_for(tmp_path, fork))
    gone = Path(task.workdir) / "gone"

    (job_id,) = scheduler.submit_array(
        ArrayRequest(
            "rea.t.validation.r1",
            [TaskSpec(task.argv, gone, task.log_dir, task.env)],
            RESOURCES,
            1,
            workdir=Path("/tmp"),
        )
    )

    info = wait_for(scheduler, [job_id])[job_id]
    assert (info.state, info.exit_code) == (JobState.FAILED, 127)
    assert info.reason == f"could not start: [Errno 2] No such file or directory: '{gone}'"
    assert ("imported ranking_models.train" in runner_log(scheduler, job_id)) is fork


@pytest.mark.slow
def test_a_trial_folder_that_could_shadow_an_imported_module_gets_a_new_process(
    tmp_path: Path,
) -> None:
    scheduler = LocalScheduler(tmp_path / "state")
    task = trial_task(tmp_path, "t", config(), env_for(tmp_path, True))
    (Path(task.workdir) / "torch").mkdir()  # a bare folder: the real torch still wins

    (job_id,) = scheduler.submit_array(
        ArrayRequest("rea.t.validation.r1", [task], RESOURCES, 1, workdir=Path("/tmp"))
    )

    info = wait_for(scheduler, [job_id])[job_id]
    assert (info.state, info.exit_code) == (JobState.COMPLETED, 0)
    log = runner_log(scheduler, job_id)
    assert f"starting {job_id} as a new process: its working directory holds torch" in log
    assert "forked pid" not in log
