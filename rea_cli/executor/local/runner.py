"""The detached process that runs one submission of the local backend.

    python -m rea_cli.executor.local.runner STATE_DIR ARRAY_ID

The submitter starts this in a new session and waits only for it to fork: the forked child (the
runner) is orphaned at once, so it outlives the submitting CLI and never becomes its zombie. The
runner claims its jobs, waits for their dependencies (wake-up jobs), starts PENDING jobs in order
with bounded parallelism, reaps them, records each outcome, and exits when every job has ended.
There is no long-lived daemon: one runner per submission, gone when its jobs are. Trial tasks
start by fork from a runner that has imported the trainer once (forking.py; REA_LOCAL_FORK=0:
as new processes, like every other command).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from rea_cli.executor.local import procs, records
from rea_cli.executor.local.forking import JOB_ID_ENV, TaskProcess, TrialForker
from rea_cli.executor.local.records import ArraySpec, JobRecord, TaskCommand
from rea_cli.executor.local.store import JobStore, try_slot
from rea_cli.executor.scheduler import JobState

logger = logging.getLogger(__name__)

POLL_S = 0.2
# SIGTERM, then SIGKILL this much later (time limit). The trainer stops on SIGTERM at once;
# the grace is reserved in the budget for every task, so it is kept short.
KILL_GRACE_S = 5.0
DISK_FULL_WAIT_S = 5.0


@dataclass
class _Running:
    proc: TaskProcess
    slot: IO[Any] | None
    killed_at: float | None = None  # monotonic time of the time-limit SIGTERM


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    state_dir, array_id = Path(args[0]), int(args[1])
    if os.fork() > 0:
        os._exit(0)  # the intermediate: its exit orphans the runner below
    os.chdir("/")  # hold no directory of the submitter busy; every path we use is absolute
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)  # tasks inherit these: a submitter may ignore them
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run(JobStore(state_dir), array_id)


def run(store: JobStore, array_id: int) -> None:
    spec = store.read_spec(array_id)
    me = procs.identity(os.getpid())
    commands = dict(zip(spec.job_ids, spec.commands, strict=True))
    running: dict[str, _Running] = {}
    forker = TrialForker()
    claimed = False
    while True:
        # A full disk must not kill the runner (its jobs would end NODE_FAIL and burn retries):
        # every record is written whole or not at all, so each step is simply tried again.
        try:
            if not claimed:
                store.update(spec.job_ids, lambda r: r.replace(runner=me))
                claimed = True
            if _poll_once(store, array_id, spec, commands, running, forker):
                return
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            logger.warning("disk full (%s); trying again in %.0fs", exc, DISK_FULL_WAIT_S)
            time.sleep(DISK_FULL_WAIT_S)
            continue
        time.sleep(POLL_S)


def _poll_once(
    store: JobStore,
    array_id: int,
    spec: ArraySpec,
    commands: dict[str, TaskCommand],
    running: dict[str, _Running],
    forker: TrialForker,
) -> bool:
    """Reap, enforce time limits, start what may start. True when every job has ended."""
    _reap(store, running)
    current = [r for r in (store.read(j) for j in spec.job_ids) if r is not None]
    if not running and all(r.state.is_terminal for r in current):
        return True
    _enforce_time_limit(store, spec, running)
    if _dependencies_met(store, spec):
        for record in records.next_to_start(current, len(running), spec.parallelism):
            command = commands[record.job_id]
            forker.prepare(command.argv, command.workdir, _task_env(record, command))
            slot = try_slot(store.slots_dir, spec.max_parallel) if spec.max_parallel else None
            if spec.max_parallel and slot is None:
                break  # the machine is full; try again next poll
            try:
                proc = _start(store, array_id, record.job_id, command, forker)
            except BaseException:
                if slot is not None:
                    slot.close()
                raise
            if proc is not None:
                running[record.job_id] = _Running(proc, slot)
            elif slot is not None:
                slot.close()
    return False


def _dependencies_met(store: JobStore, spec: ArraySpec) -> bool:
    if not spec.after:
        return True
    states = [(r.state if r else JobState.UNKNOWN) for r in map(store.current, spec.after)]
    return records.dependencies_met(states)


def _start(
    store: JobStore, array_id: int, job_id: str, command: TaskCommand, forker: TrialForker
) -> TaskProcess | None:
    """Start a PENDING job (under the array lock, so a concurrent cancel sees RUNNING + pid)."""
    with store.locked(array_id):
        record = store.read(job_id)
        if record is None or record.state is not JobState.PENDING:
            return None
        try:
            proc = _spawn(record, command, forker)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # not the job's fault: it stays PENDING, the runner tries again
            logger.warning("job %s could not start: %s", job_id, exc)
            store.write(records.failed_to_start(record, str(exc), records.now_iso()))
            return None
        try:
            store.write(records.started(record, procs.identity(proc.pid), records.now_iso()))
        except OSError:
            # unrecorded, it would be started twice: stop it, the job stays PENDING
            procs.signal_group(procs.identity(proc.pid), signal.SIGKILL)
            _wait_gone(proc)
            raise
        return proc


def _wait_gone(proc: TaskProcess, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


def _task_env(record: JobRecord, command: TaskCommand) -> dict[str, str]:
    return {**os.environ, **command.env, JOB_ID_ENV: record.job_id}


def _spawn(record: JobRecord, command: TaskCommand, forker: TrialForker) -> TaskProcess:
    env = _task_env(record, command)
    Path(record.stdout).parent.mkdir(parents=True, exist_ok=True)
    if forker.can_fork(command.argv, command.workdir, env):
        forked = forker.start(command.argv, command.workdir, env, record.stdout, record.stderr)
        logger.info("job %s: forked pid %d", record.job_id, forked.pid)
        return forked
    with open(record.stdout, "ab") as out, open(record.stderr, "ab") as err:
        # Own session and process group: cancel kills the task and everything it started.
        return subprocess.Popen(
            command.argv,
            cwd=command.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )


def _reap(store: JobStore, running: dict[str, _Running]) -> None:
    for job_id, job in list(running.items()):
        returncode = job.proc.poll()
        if returncode is None:
            continue
        store.update([job_id], functools.partial(_ended, rc=returncode, at=records.now_iso()))
        if job.slot is not None:
            job.slot.close()
        del running[job_id]


def _ended(record: JobRecord, *, rc: int, at: str) -> JobRecord:
    return records.ended(record, rc, at)


def _enforce_time_limit(store: JobStore, spec: ArraySpec, running: dict[str, _Running]) -> None:
    now = datetime.now(UTC)
    for job_id, job in running.items():
        record = store.read(job_id)
        if record is None or record.task is None:
            continue
        if records.over_time_limit(record, spec.time_limit_s, now):
            store.update([job_id], lambda r: r.replace(timed_out=True))
            procs.signal_group(record.task, signal.SIGTERM)
            job.killed_at = time.monotonic()
        elif job.killed_at is not None and time.monotonic() - job.killed_at > KILL_GRACE_S:
            procs.signal_group(record.task, signal.SIGKILL)


if __name__ == "__main__":
    main()
