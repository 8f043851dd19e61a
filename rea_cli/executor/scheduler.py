"""The Scheduler interface: what the agent needs from Slurm or from the embedded local backend.

The agent never runs trials itself. It submits *arrays* of tasks (one task = one command line),
then a *wake-up* job that runs after every task of those arrays has ended, whatever the outcome
(Slurm's --dependency=afterany). It queries job states and cancels jobs. Both backends implement
exactly this; tests/contract/ runs one suite against both.

Job names encode campaign/phase/round (see `job_name`) so a crash between submitting and
recording a job id can be reconciled with `find` instead of submitting twice.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable


class JobState(enum.StrEnum):
    """One enum for every backend. Slurm strings map here through one explicit table."""

    PENDING = "PENDING"
    HELD = "HELD"  # submitted held, waiting for release()
    RUNNING = "RUNNING"
    REQUEUED = "REQUEUED"  # preempted or requeued; will run again
    COMPLETED = "COMPLETED"  # exit code 0
    FAILED = "FAILED"  # non-zero exit code
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"  # preempted and not requeued
    UNKNOWN = "UNKNOWN"  # a state we cannot map, or a job the scheduler no longer knows

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_success(self) -> bool:
        return self is JobState.COMPLETED


_TERMINAL = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.OUT_OF_MEMORY,
        JobState.NODE_FAIL,
        JobState.PREEMPTED,
    }
)


@dataclass(frozen=True)
class Resources:
    """What one task of an array asks for; Slurm maps it to sbatch options."""

    time_limit_min: int = 60
    gpus_per_task: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    extra_sbatch: Mapping[str, str] = field(default_factory=dict)
    setup: Sequence[str] = ()  # shell lines run before the task (module load ..., source venv)

    @property
    def gpu_hours_reserved(self) -> float:
        """Worst case GPU-hours of one task: time limit x GPUs."""
        return self.time_limit_min / 60.0 * self.gpus_per_task


@dataclass(frozen=True)
class TaskSpec:
    """One task of an array: a command line, run in `workdir` with extra environment."""

    argv: Sequence[str]
    workdir: Path
    log_dir: Path  # stdout/stderr of the task go here (backend chooses file names)
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobInfo:
    """What a backend knows of one job (one array task or one wake-up job)."""

    job_id: str
    name: str
    state: JobState
    exit_code: int | None = None
    node: str | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    elapsed_s: float | None = None
    gpus: int = 0
    reason: str | None = None  # scheduler's reason (pending reason, failure reason)
    restarts: int = 0  # times the job was requeued


@runtime_checkable
class Scheduler(Protocol):
    """A place to run arrays of tasks and wake-up jobs. Implementations: local, slurm."""

    name: str

    def submit_array(
        self,
        tasks: Sequence[TaskSpec],
        *,
        job_name: str,
        resources: Resources,
        parallelism: int,
        hold: bool = False,
    ) -> list[str]:
        """Submit tasks as one or more arrays; return one job id per task, in order.

        At most `parallelism` tasks of the call run at once. With hold=True nothing starts until
        `release` is called on the ids (so a wake-up can be chained before any task can end).
        """
        ...

    def submit_wakeup(
        self, after: Sequence[str], argv: Sequence[str], *, job_name: str, log_dir: Path
    ) -> str:
        """Submit a job running `argv` once every job in `after` has ended (any outcome).

        Must work when some or all of `after` have already ended.
        """
        ...

    def release(self, job_ids: Sequence[str]) -> None:
        """Let held jobs start."""
        ...

    def states(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """Current state of each job id; a job unknown to the scheduler maps to UNKNOWN."""
        ...

    def find(self, name_prefix: str) -> list[JobInfo]:
        """Every job the scheduler still knows whose name starts with `name_prefix`."""
        ...

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel jobs (pending or running). Cancelling an ended or unknown job is not an error."""
        ...


def job_name(campaign_id: str, phase: str, round_: int, *, wakeup: bool = False) -> str:
    """Job name encoding campaign/phase/round: `rea.<campaign>.<phase>.r<round>[.wake]`."""
    base = f"rea.{campaign_id}.{phase}.r{round_}"
    return f"{base}.wake" if wakeup else base


def campaign_job_prefix(campaign_id: str) -> str:
    return f"rea.{campaign_id}."
