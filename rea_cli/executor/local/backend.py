"""LocalScheduler: the Scheduler interface on this machine, with no long-lived rea daemon.

Each submission (an array, or a wake-up job) starts one detached runner process
(`rea_cli.executor.local.runner`) that runs its jobs and exits when they have ended. Everything
else (states, find, release, cancel) reads and writes the job records in the state directory,
so any process, including a later CLI, sees the same jobs. See store.py for the layout.
"""

from __future__ import annotations

import logging
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rea_cli.errors import SchedulerError
from rea_cli.executor.local import procs, records
from rea_cli.executor.local.records import ArraySpec, JobRecord, TaskCommand
from rea_cli.executor.local.store import JobStore
from rea_cli.executor.scheduler import (
    ArrayRequest,
    JobInfo,
    JobState,
    Resources,
    SubmissionRequest,
    WakeupRequest,
)

logger = logging.getLogger(__name__)

_SPAWN_TIMEOUT_S = 30.0


class LocalScheduler:
    """Runs tasks as local processes; job state lives in `state_dir` (`<workspace>/.rea/local`).

    `max_parallel` bounds the tasks running at once across every submission sharing `state_dir`
    (None: only each submission's own `parallelism`). GPUs and memory requests are ignored;
    `Resources.time_limit_min` is enforced (the job ends TIMEOUT).
    """

    name = "local"

    def __init__(
        self, state_dir: Path, *, max_parallel: int | None = None, cancel_grace_s: float = 10.0
    ) -> None:
        if max_parallel is not None and max_parallel < 1:
            raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
        self.store = JobStore(state_dir)
        self.max_parallel = max_parallel
        self.cancel_grace_s = cancel_grace_s

    @property
    def state_dir(self) -> Path:
        return self.store.root

    def submit_array(self, request: ArrayRequest) -> list[str]:
        tasks, resources, hold = request.tasks, request.resources, request.hold
        if request.parallelism < 1:
            raise ValueError(f"parallelism must be at least 1, got {request.parallelism}")
        if not tasks:
            return []
        array_id = self.store.new_array_id()
        job_ids = [records.format_job_id(array_id, i) for i in range(len(tasks))]
        commands = [
            TaskCommand([str(a) for a in t.argv], str(Path(t.workdir).resolve()), dict(t.env))
            for t in tasks
        ]
        spec = ArraySpec(
            array_id,
            request.job_name,
            job_ids,
            commands,
            parallelism=min(request.parallelism, self.max_parallel or request.parallelism),
            max_parallel=self.max_parallel,
            # As in Slurm, a time limit of 0 means none.
            time_limit_s=resources.time_limit_min * 60.0 if resources.time_limit_min else None,
        )
        state = JobState.HELD if hold else JobState.PENDING
        reason = "JobHeldUser" if hold else None
        new = [
            self._new_record(job_id, request.job_name, state, reason, Path(t.log_dir))
            for job_id, t in zip(job_ids, tasks, strict=True)
        ]
        self._submit(spec, new)
        return job_ids

    def submit_wakeup(self, request: WakeupRequest, after: Sequence[str]) -> str:
        array_id = self.store.new_array_id()
        job_id = records.format_job_id(array_id, None)
        command = TaskCommand(
            [str(a) for a in request.argv], str(Path(request.workdir).resolve()), {}
        )
        spec = ArraySpec(
            array_id, request.job_name, [job_id], [command], parallelism=1, after=list(after)
        )
        record = self._new_record(
            job_id, request.job_name, JobState.PENDING, "Dependency", Path(request.log_dir)
        )
        self._submit(spec, [record])
        return job_id

    def render(self, request: SubmissionRequest) -> list[tuple[str, str]]:
        """The processes a submission would start, as shell lines (dry run)."""
        array = request.array
        limit = (
            f"{array.resources.time_limit_min * 60:.0f} s"
            if array.resources.time_limit_min
            else "none"
        )
        lines = [
            f"# {len(array.tasks)} task(s), at most {array.parallelism} at once "
            f"(and [local] max_parallel), time limit {limit} each"
            + (", held until the wake-up is chained" if array.hold else "")
        ]
        for t in array.tasks:
            env = " ".join(f"{k}={shlex.quote(v)}" for k, v in t.env.items())
            lines.append(
                f"(cd {shlex.quote(str(t.workdir))} && {env + ' ' if env else ''}"
                f"{shlex.join(str(a) for a in t.argv)})"
            )
        wake = request.wakeup
        script = (
            f"# after every task above has ended (any outcome):\n"
            f"(cd {shlex.quote(str(wake.workdir))} && {shlex.join(str(a) for a in wake.argv)})"
        )
        return [(f"array {array.job_name}", "\n".join(lines)), (f"wake-up {wake.job_name}", script)]

    def enforced_limit_min(self, time_limit_min: float) -> float:
        """The runner sees the limit within a poll, sends SIGTERM, SIGKILL after `KILL_GRACE_S`
        and reaps the task a poll later (runner.py); one second more for a busy machine."""
        from rea_cli.executor.local.runner import KILL_GRACE_S, POLL_S

        if not time_limit_min:
            return 0.0
        return time_limit_min + (KILL_GRACE_S + 4 * POLL_S + 1.0) / 60.0

    def max_mem_gb(self, resources: Resources) -> float | None:
        """Local tasks get no memory limit of their own."""
        return None

    def release(self, job_ids: Sequence[str]) -> None:
        self.store.update(job_ids, records.release)

    def states(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        out = {}
        for job_id in job_ids:
            record = self.store.current(job_id)
            out[job_id] = record.to_info() if record else _unknown(job_id)
        return out

    def find(self, name_prefix: str) -> list[JobInfo]:
        found = []
        for job_id in self.store.all_job_ids():
            record = self.store.read(job_id)
            if record is not None and record.name.startswith(name_prefix):
                current = self.store.current(job_id) or record
                found.append(current.to_info())
        return found

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel jobs: not started ones end at once; running ones get SIGTERM, then SIGKILL
        after `cancel_grace_s`. Returns once nothing of them runs any more."""
        at = records.now_iso()
        changed = self.store.update(job_ids, lambda r: records.cancel(r, at))
        running = [r.task for r in changed if r.state is JobState.RUNNING and r.task]
        for task in running:
            procs.signal_group(task, signal.SIGTERM)
        deadline = time.monotonic() + self.cancel_grace_s
        while running and time.monotonic() < deadline:
            time.sleep(0.05)
            running = [t for t in running if procs.group_alive(t.pid)]
        for task in running:
            logger.warning("job task pid %d ignored SIGTERM; sending SIGKILL", task.pid)
            procs.signal_group(task, signal.SIGKILL)

    # --- internals -------------------------------------------------------------------------

    def _new_record(
        self, job_id: str, name: str, state: JobState, reason: str | None, log_dir: Path
    ) -> JobRecord:
        log_dir = log_dir.resolve()
        return JobRecord(
            job_id=job_id,
            name=name,
            state=state,
            reason=reason,
            submitted_at=records.now_iso(),
            node=socket.gethostname(),
            stdout=str(log_dir / f"{job_id}.out"),
            stderr=str(log_dir / f"{job_id}.err"),
        )

    def _submit(self, spec: ArraySpec, new: list[JobRecord]) -> None:
        self.store.write_spec(spec)
        for record in new:
            self.store.write(record)
        try:
            self._spawn_runner(spec.array_id)
        except SchedulerError:
            at = records.now_iso()
            self.store.update(
                spec.job_ids,
                lambda r: r.replace(state=JobState.FAILED, reason="runner failed", ended_at=at),
            )
            raise

    def _spawn_runner(self, array_id: int) -> None:
        log = self.store.runner_log(array_id)
        argv = [sys.executable, "-m", "rea_cli.executor.local.runner"]
        with open(log, "ab") as err:
            proc = subprocess.Popen(
                [*argv, str(self.store.root), str(array_id)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        try:
            returncode = proc.wait(timeout=_SPAWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            returncode = -1
        if returncode != 0:
            raise SchedulerError(
                f"the local runner for submission {array_id} did not start "
                f"(exit {returncode}); see {log}"
            )
        logger.debug("submission %d: runner started", array_id)


def _unknown(job_id: str) -> JobInfo:
    return JobInfo(job_id=job_id, name="", state=JobState.UNKNOWN, reason="unknown job id")
