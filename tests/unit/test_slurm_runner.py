"""SlurmRunner: retries of transient failures, call counting, one-line errors."""

from __future__ import annotations

import pytest

from rea_cli.errors import SchedulerError
from rea_cli.executor.slurm.runner import CommandResult, SlurmRunner, is_transient


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def runner(retries: int = 2) -> tuple[SlurmRunner, list[float]]:
    sleeps: list[float] = []
    return SlurmRunner(retries=retries, backoff_s=0.5, sleep=sleeps.append), sleeps


def test_transient_patterns() -> None:
    assert is_transient("sbatch: error: Batch job submission failed: Socket timed out on send/recv")
    assert is_transient("squeue: error: Unable to contact slurm controller (connect failure)")
    assert not is_transient("sbatch: error: Batch job submission failed: Invalid partition name")
    assert not is_transient("slurm_load_jobs error: Invalid job id specified")


def test_success_counts_one_call() -> None:
    run, sleeps = runner()

    result = run.run(sh("echo 12"))

    assert result.ok and result.stdout == "12\n"
    assert run.calls["sh"] == 1 and sleeps == []


def test_transient_failure_is_retried_with_backoff_then_one_line_error() -> None:
    run, sleeps = runner(retries=2)

    with pytest.raises(SchedulerError) as error:
        run.run(sh("echo 'line one' >&2; echo 'error: Socket timed out on send/recv' >&2; exit 1"))

    assert str(error.value) == "sh failed after 3 tries: error: Socket timed out on send/recv"
    assert run.calls["sh"] == 3 and sleeps == [0.5, 1.0]


def test_permanent_failure_is_not_retried() -> None:
    run, sleeps = runner()

    result = run.run(sh("echo 'Invalid partition name specified' >&2; exit 1"), check=False)

    assert not result.ok and result.error_line() == "Invalid partition name specified"
    assert run.calls["sh"] == 1 and sleeps == []


def test_before_retry_can_recover_a_lost_reply() -> None:
    """sbatch timed out but the job exists: the retry hook finds it, nothing is resubmitted."""
    run, _ = runner()
    found = CommandResult(("sbatch",), 0, "42", "")

    result = run.run(sh("echo 'Socket timed out' >&2; exit 1"), before_retry=lambda: found)

    assert result is found and run.calls["sh"] == 1


def test_missing_command_says_where_to_run() -> None:
    run, _ = runner()

    with pytest.raises(SchedulerError, match="not found: run rea on a Slurm login node"):
        run.run(["rea-no-such-slurm-command"])
