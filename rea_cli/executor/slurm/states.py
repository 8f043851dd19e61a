"""Slurm job state strings -> JobState, through ONE explicit table.

squeue, sacct and scontrol all print these names (sacct may add words: "CANCELLED by 1000").
A state missing from the table maps to UNKNOWN, never to a guess.
"""

from __future__ import annotations

from rea_cli.executor.scheduler import JobState

SLURM_STATES: dict[str, JobState] = {
    # waiting
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,  # nodes allocated, booting: not running the script yet
    "REQUEUE_HOLD": JobState.HELD,  # requeued and held (scontrol requeuehold)
    "RESV_DEL_HOLD": JobState.HELD,
    "REQUEUED": JobState.REQUEUED,
    "REQUEUE_FED": JobState.REQUEUED,
    # running (not terminal: the job still holds or will get back its allocation)
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,  # ended, epilog still running; the exit code is not final
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    # terminal
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,  # federation: another cluster ran it
    "TIMEOUT": JobState.TIMEOUT,
    "DEADLINE": JobState.TIMEOUT,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "NODE_FAIL": JobState.NODE_FAIL,
    "BOOT_FAIL": JobState.NODE_FAIL,
    "PREEMPTED": JobState.PREEMPTED,
}

# A PENDING job with one of these reasons waits for `scontrol release`, not for resources.
HELD_REASONS = frozenset({"JobHeldUser", "JobHeldAdmin"})


def to_job_state(slurm_state: str, reason: str | None = None) -> JobState:
    """Map a Slurm state string (any of squeue/sacct/scontrol) and its reason to a JobState."""
    words = slurm_state.strip().split()
    if not words:
        return JobState.UNKNOWN
    state = SLURM_STATES.get(words[0].rstrip("+").upper(), JobState.UNKNOWN)
    if state is JobState.PENDING and reason in HELD_REASONS:
        return JobState.HELD
    return state
