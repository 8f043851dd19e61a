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
import hashlib
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
        """The scheduler knows the job ended (backends use this for jobs they still know)."""
        return self in _TERMINAL

    @property
    def has_ended(self) -> bool:
        """Whether a recorded job has ended: the ONE rule every reader of job records uses
        (resume, budget, watchdog, status). UNKNOWN counts as ended: a job the scheduler no
        longer knows cannot run any more, and must neither stay reserved nor be waited for."""
        return self in _TERMINAL or self is JobState.UNKNOWN


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


# Pending reasons (Slurm's names; the local backend has none) that mean a job can never start
# as it was submitted: the request exceeds what its partition, account or QOS allow per job.
# Reasons that clear by themselves (Resources, Priority, QOSMax*PerUser..., PartitionDown,
# ReqNodeNotAvail, JobHeldAdmin) are not here.
NEVER_STARTS = frozenset(
    {
        "PartitionConfig",
        "PartitionNodeLimit",
        "PartitionTimeLimit",
        "BadConstraints",
        "InvalidAccount",
        "InvalidQOS",
        "AccountNotAllowed",
        "QOSMaxCpuPerJobLimit",
        "QOSMaxGRESPerJob",
        "QOSMaxMemoryPerJob",
        "QOSMaxNodePerJobLimit",
        "QOSMaxWallDurationPerJobLimit",
        "AssocMaxCpuPerJobLimit",
        "AssocMaxMemPerJobLimit",
        "AssocMaxWallDurationPerJobLimit",
    }
)


def never_starts(state: JobState, reason: str | None) -> bool:
    """A pending job whose reason can never clear (it would wait forever)."""
    return state is JobState.PENDING and (reason or "") in NEVER_STARTS


@dataclass(frozen=True)
class Resources:
    """What one task of an array asks for; Slurm maps it to sbatch options.

    time_limit_min may be fractional on the local backend (it enforces seconds); Slurm rounds
    it up to whole minutes.
    """

    time_limit_min: float = 60
    gpus_per_task: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    extra_sbatch: Mapping[str, str] = field(default_factory=dict)
    setup: Sequence[str] = ()  # shell lines run before the task (module load ..., source venv)


@dataclass(frozen=True)
class TaskSpec:
    """One task of an array: a command line, run in `workdir` with extra environment."""

    argv: Sequence[str]
    workdir: Path
    log_dir: Path  # stdout/stderr of the task go here (backend chooses file names)
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ArrayRequest:
    """One array of tasks as data (torchx-style): the dry run renders it, submit sends it.

    `workdir` is where the scheduler starts each job (never the submitting process's current
    directory, which may not exist on a compute node); each task then runs in its own workdir.
    """

    job_name: str
    tasks: Sequence[TaskSpec]
    resources: Resources
    parallelism: int
    workdir: Path
    hold: bool = False
    preamble: str = ""  # site preamble ([slurm] preamble), before the setup lines


@dataclass(frozen=True)
class WakeupRequest:
    """The job that runs `argv` (the resume step) once an array has ended, whatever the outcome.

    Its resources are its own (1 CPU, no GPU, short), with the site's partition, account, QOS
    and setup lines: built from the settings every time, never from an earlier submission.
    """

    job_name: str
    argv: Sequence[str]
    resources: Resources
    log_dir: Path
    workdir: Path
    preamble: str = ""


@dataclass(frozen=True)
class SubmissionRequest:
    """What submitting one round sends: the array and the wake-up chained after it."""

    array: ArrayRequest
    wakeup: WakeupRequest


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

    def submit_array(self, request: ArrayRequest) -> list[str]:
        """Submit the request's tasks as one or more arrays; one job id per task, in order.

        At most `request.parallelism` tasks run at once. With hold=True nothing starts until
        `release` is called on the ids (so a wake-up can be chained before any task can end).
        """
        ...

    def submit_wakeup(self, request: WakeupRequest, after: Sequence[str]) -> str:
        """Submit the wake-up to run once every job in `after` has ended (any outcome).

        Must work when some or all of `after` have already ended.
        """
        ...

    def render(self, request: SubmissionRequest) -> list[tuple[str, str]]:
        """(title, text) pairs showing exactly what submitting `request` sends (dry run)."""
        ...

    def enforced_limit_min(self, time_limit_min: float) -> float:
        """Minutes a task asking for `time_limit_min` may really run before this scheduler
        kills it (rounding and overrun included): what the budget reserves for it."""
        ...

    def max_mem_gb(self, resources: Resources) -> float | None:
        """The most memory (GB) one task like `resources` can be given where it would run (its
        partition's largest node, within the partition's limits); None when this backend puts
        no memory limit on a task. A retry after an out-of-memory kill asks for no more."""
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


def workspace_tag(root: Path) -> str:
    """A short hash of a workspace's path: job names are per user, not per folder, so two
    workspaces of one user must never see each other's jobs by name."""
    return hashlib.sha256(str(Path(root).absolute()).encode()).hexdigest()[:6]


def job_name(
    ws_tag: str, campaign_id: str, phase: str, round_: int, *, wakeup: bool = False
) -> str:
    """Job name encoding workspace/campaign/phase/round: `rea.<ws>.<campaign>.<phase>.r<n>`."""
    base = f"rea.{ws_tag}.{campaign_id}.{phase}.r{round_}"
    return f"{base}.wake" if wakeup else base


def campaign_job_prefix(ws_tag: str, campaign_id: str) -> str:
    return f"rea.{ws_tag}.{campaign_id}."
