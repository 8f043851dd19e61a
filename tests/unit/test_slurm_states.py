"""The one table from Slurm state strings to JobState, and the pending reasons that never clear."""

from __future__ import annotations

import pytest

from rea_cli.executor.scheduler import JobState, never_starts
from rea_cli.executor.slurm.states import SLURM_STATES, to_job_state


@pytest.mark.parametrize(
    ("slurm", "expected"),
    [
        ("PENDING", JobState.PENDING),
        ("RUNNING", JobState.RUNNING),
        ("COMPLETING", JobState.RUNNING),
        ("COMPLETED", JobState.COMPLETED),
        ("FAILED", JobState.FAILED),
        ("CANCELLED", JobState.CANCELLED),
        ("CANCELLED by 1000", JobState.CANCELLED),  # sacct
        ("CANCELLED+", JobState.CANCELLED),  # sacct, truncated column
        ("TIMEOUT", JobState.TIMEOUT),
        ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY),
        ("NODE_FAIL", JobState.NODE_FAIL),
        ("BOOT_FAIL", JobState.NODE_FAIL),
        ("PREEMPTED", JobState.PREEMPTED),
        ("REQUEUED", JobState.REQUEUED),
        ("REQUEUE_HOLD", JobState.HELD),
        ("DEADLINE", JobState.TIMEOUT),
        ("SUSPENDED", JobState.RUNNING),
        ("SOMETHING_NEW", JobState.UNKNOWN),
        ("", JobState.UNKNOWN),
    ],
)
def test_state_table(slurm: str, expected: JobState) -> None:
    assert to_job_state(slurm) is expected


def test_pending_with_a_hold_reason_is_held() -> None:
    assert to_job_state("PENDING", "JobHeldUser") is JobState.HELD
    assert to_job_state("PENDING", "JobHeldAdmin") is JobState.HELD
    assert to_job_state("PENDING", "Dependency") is JobState.PENDING
    assert to_job_state("CANCELLED", "JobHeldUser") is JobState.CANCELLED


def test_terminal_states_are_the_ones_slurm_never_leaves() -> None:
    terminal = {s for s, state in SLURM_STATES.items() if state.is_terminal}

    assert terminal == {
        "COMPLETED",
        "FAILED",
        "SPECIAL_EXIT",
        "CANCELLED",
        "REVOKED",
        "TIMEOUT",
        "DEADLINE",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "BOOT_FAIL",
        "PREEMPTED",
    }


def test_has_ended_is_terminal_or_unknown() -> None:
    """The one rule readers of job records use: a job the scheduler no longer knows has ended
    (it can never run again), and nothing that may still run has."""
    ended = {state for state in JobState if state.has_ended}

    assert ended == {state for state in JobState if state.is_terminal} | {JobState.UNKNOWN}
    still_running = {JobState.PENDING, JobState.HELD, JobState.RUNNING, JobState.REQUEUED}
    assert not ended & still_running
    assert set(JobState) == ended | still_running
    assert not JobState.UNKNOWN.is_terminal  # backends: a job they cannot map is not "ended"


@pytest.mark.parametrize(
    ("reason", "never"),
    [
        ("PartitionConfig", True),  # the request exceeds what the partition allows per job
        ("PartitionTimeLimit", True),
        ("QOSMaxGRESPerJob", True),
        ("InvalidAccount", True),
        ("AssocMaxWallDurationPerJobLimit", True),
        ("Resources", False),  # waits for nodes to free up
        ("Priority", False),
        ("QOSMaxGRESPerUser", False),  # clears when the user's other jobs end
        ("PartitionDown", False),  # clears when an admin brings it back
        ("JobArrayTaskLimit", False),
        ("", False),
        (None, False),
    ],
)
def test_never_starts_only_for_reasons_that_cannot_clear(reason: str | None, never: bool) -> None:
    assert never_starts(JobState.PENDING, reason) is never


@pytest.mark.parametrize("state", [s for s in JobState if s is not JobState.PENDING])
def test_never_starts_only_while_pending(state: JobState) -> None:
    assert not never_starts(state, "PartitionConfig")
