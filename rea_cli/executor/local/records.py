"""Pure logic of the local backend: job records, job ids, state transitions. No I/O here.

A job record is one small JSON object per job (an array task or a wake-up job), written by the
submitter, the detached runner that supervises the job, and `cancel`. The runner is the only
process that sees a task's exit status; when it dies, `resolve_orphan` decides what the record
should say instead of staying RUNNING forever.
"""

from __future__ import annotations

import dataclasses
import re
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rea_cli.executor.scheduler import JobInfo, JobState

# A runner that has not claimed its jobs this long after submission never started.
RUNNER_START_GRACE_S = 60.0


@dataclass(frozen=True)
class ProcIdentity:
    """A process as it was when recorded: pid plus what tells it apart from a reused pid."""

    pid: int
    start_ticks: int | None = None  # /proc/<pid>/stat field 22; None where there is no /proc
    boot_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ProcIdentity | None:
        if not data:
            return None
        return cls(int(data["pid"]), data.get("start_ticks"), data.get("boot_id"))


@dataclass(frozen=True)
class JobRecord:
    """What the local backend knows of one job; serialised as `<state_dir>/jobs/<job_id>.json`."""

    job_id: str
    name: str
    state: JobState
    submitted_at: str
    node: str
    stdout: str
    stderr: str
    reason: str | None = None
    exit_code: int | None = None
    started_at: str | None = None
    ended_at: str | None = None
    runner: ProcIdentity | None = None  # the detached process supervising this job
    task: ProcIdentity | None = None  # the task process; its pgid equals its pid
    cancel_requested: bool = False
    timed_out: bool = False  # the runner killed it at its time limit

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state"] = self.state.value
        data["runner"] = self.runner.to_json() if self.runner else None
        data["task"] = self.task.to_json() if self.task else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["state"] = JobState(data["state"])
        kwargs["runner"] = ProcIdentity.from_json(data.get("runner"))
        kwargs["task"] = ProcIdentity.from_json(data.get("task"))
        return cls(**kwargs)

    def replace(self, **changes: Any) -> JobRecord:
        return dataclasses.replace(self, **changes)

    def to_info(self) -> JobInfo:
        started, ended = parse_time(self.started_at), parse_time(self.ended_at)
        elapsed = (ended - started).total_seconds() if started and ended else None
        return JobInfo(
            job_id=self.job_id,
            name=self.name,
            state=self.state,
            exit_code=self.exit_code,
            node=self.node,
            submitted_at=parse_time(self.submitted_at),
            started_at=started,
            ended_at=ended,
            elapsed_s=elapsed,
            reason=self.reason,
        )


# --- job ids -------------------------------------------------------------------------------


_JOB_ID = re.compile(r"([0-9]+)(?:_([0-9]+))?")


def format_job_id(array_id: int, index: int | None) -> str:
    """`<array>_<index>` for an array task, `<array>` for a single job (as Slurm does)."""
    return f"{array_id}" if index is None else f"{array_id}_{index}"


def parse_job_id(job_id: str) -> tuple[int, int | None] | None:
    """(array id, task index or None), or None when `job_id` is not a local job id."""
    match = _JOB_ID.fullmatch(job_id)
    if match is None:
        return None
    array_id, index = match.groups()
    return int(array_id), (int(index) if index is not None else None)


# --- times ---------------------------------------------------------------------------------


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# --- transitions ---------------------------------------------------------------------------


def started(record: JobRecord, task: ProcIdentity, at: str) -> JobRecord:
    return record.replace(state=JobState.RUNNING, task=task, started_at=at, reason=None)


def ended(record: JobRecord, returncode: int, at: str) -> JobRecord:
    """Record a task's end from its Popen return code (negative: killed by that signal)."""
    state, exit_code, reason = outcome(
        returncode, cancelled=record.cancel_requested, timed_out=record.timed_out
    )
    return record.replace(state=state, exit_code=exit_code, reason=reason, ended_at=at)


def outcome(
    returncode: int, *, cancelled: bool = False, timed_out: bool = False
) -> tuple[JobState, int, str | None]:
    """(state, exit code, reason) of a task that ended with `returncode` (<0: killed by signal)."""
    if cancelled:
        return JobState.CANCELLED, _exit_code(returncode), "cancelled"
    if timed_out:
        return JobState.TIMEOUT, _exit_code(returncode), "time limit reached"
    if returncode == 0:
        return JobState.COMPLETED, 0, None
    if returncode > 0:
        return JobState.FAILED, returncode, f"exit code {returncode}"
    return JobState.FAILED, _exit_code(returncode), f"killed by signal {_signal_name(-returncode)}"


def failed_to_start(record: JobRecord, error: str, at: str) -> JobRecord:
    """The task could not be started (command or workdir missing): FAILED like a shell's 127."""
    return record.replace(
        state=JobState.FAILED, exit_code=127, reason=f"could not start: {error}", ended_at=at
    )


def cancel(record: JobRecord, at: str) -> JobRecord:
    """Cancel a job: a job not started yet ends now; a running one ends when its process does."""
    if record.state.is_terminal:
        return record
    if record.state is JobState.RUNNING:
        return record.replace(cancel_requested=True)
    return record.replace(state=JobState.CANCELLED, reason="cancelled", ended_at=at)


def release(record: JobRecord) -> JobRecord:
    if record.state is JobState.HELD:
        return record.replace(state=JobState.PENDING, reason=None)
    return record


def resolve_orphan(
    record: JobRecord, *, runner_alive: bool, task_alive: bool, age_s: float, at: str
) -> JobRecord:
    """What a non-terminal record should say, given which of its processes are still alive.

    Only the runner writes a task's outcome, so a dead runner would leave a job RUNNING or
    PENDING forever. A task still alive without its runner is reported RUNNING (it is); once it
    is gone too, the job ends NODE_FAIL (exit status unknown), or CANCELLED if that was asked.
    """
    if record.state.is_terminal or runner_alive:
        return record
    if record.runner is None and age_s < RUNNER_START_GRACE_S:
        return record  # the runner is starting and has not claimed its jobs yet
    if record.state is JobState.RUNNING and task_alive:
        return record
    if record.cancel_requested:
        return record.replace(state=JobState.CANCELLED, reason="cancelled", ended_at=at)
    who = f"pid {record.runner.pid}" if record.runner else "never started"
    if record.state is JobState.RUNNING:
        reason = f"local runner process died ({who}); the task's exit status is unknown"
    else:
        reason = f"local runner process died ({who}) before the job started"
    return record.replace(state=JobState.NODE_FAIL, reason=reason, ended_at=at)


def _exit_code(returncode: int) -> int:
    """Shell convention: a task killed by signal N exits 128 + N."""
    return returncode if returncode >= 0 else 128 - returncode


def _signal_name(signum: int) -> str:
    try:
        return f"{signal.Signals(signum).name} ({signum})"
    except ValueError:
        return str(signum)


@dataclass(frozen=True)
class TaskCommand:
    """How to run one job: the command line, where, with which extra environment."""

    argv: list[str]
    workdir: str
    env: dict[str, str]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskCommand:
        return cls(list(data["argv"]), data["workdir"], dict(data["env"]))


@dataclass(frozen=True)
class ArraySpec:
    """One submission (an array, or a single wake-up job); `<state_dir>/arrays/<id>.json`.

    Jobs run in order, at most `parallelism` at once, each once its record is PENDING (not
    HELD or CANCELLED) and every job in `after` has ended.
    """

    array_id: int
    name: str
    job_ids: list[str]
    commands: list[TaskCommand]
    parallelism: int
    max_parallel: int | None = None  # machine-wide bound shared by every array of a state dir
    time_limit_s: float | None = None  # per job, from Resources.time_limit_min
    after: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArraySpec:
        return cls(
            array_id=int(data["array_id"]),
            name=data["name"],
            job_ids=list(data["job_ids"]),
            commands=[TaskCommand.from_json(c) for c in data["commands"]],
            parallelism=int(data["parallelism"]),
            max_parallel=data.get("max_parallel"),
            time_limit_s=data.get("time_limit_s"),
            after=list(data.get("after", [])),
        )


def dependencies_met(states: list[JobState]) -> bool:
    """afterany: every dependency has ended, whatever the outcome; an unknown job has ended too."""
    return all(s.is_terminal or s is JobState.UNKNOWN for s in states)


def next_to_start(records: list[JobRecord], running: int, parallelism: int) -> list[JobRecord]:
    """The PENDING jobs to start now, in submission order, keeping at most `parallelism` running."""
    free = max(parallelism - running, 0)
    return [r for r in records if r.state is JobState.PENDING][:free]


def over_time_limit(record: JobRecord, time_limit_s: float | None, now: datetime) -> bool:
    """Whether a running job has reached its time limit and was not yet told so."""
    started_at = parse_time(record.started_at)
    if time_limit_s is None or started_at is None or record.timed_out:
        return False
    return record.state is JobState.RUNNING and (now - started_at).total_seconds() >= time_limit_s
