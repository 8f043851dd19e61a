"""Pure logic of the local backend: job ids, outcomes, transitions, orphan resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rea_cli.executor.local import records
from rea_cli.executor.local.records import ArraySpec, JobRecord, ProcIdentity, TaskCommand
from rea_cli.executor.scheduler import JobState

AT = "2026-01-01T00:00:10+00:00"


def record(state: JobState = JobState.PENDING, **changes: object) -> JobRecord:
    base = JobRecord(
        job_id="7_1",
        name="rea.c1.validation.r1",
        state=state,
        submitted_at="2026-01-01T00:00:00+00:00",
        node="node1",
        stdout="/logs/7_1.out",
        stderr="/logs/7_1.err",
    )
    return base.replace(**changes)


@pytest.mark.parametrize(
    ("job_id", "parsed"),
    [("12_3", (12, 3)), ("12", (12, None)), ("12_", None), ("x_1", None), ("", None),
     ("1_2_3", None), ("../1", None), ("-1", None)],
)  # fmt: skip
def test_parse_job_id(job_id: str, parsed: tuple[int, int | None] | None) -> None:
    assert records.parse_job_id(job_id) == parsed


def test_format_job_id_round_trips() -> None:
    assert records.format_job_id(12, 3) == "12_3"
    assert records.format_job_id(12, None) == "12"
    assert records.parse_job_id(records.format_job_id(5, 0)) == (5, 0)


@pytest.mark.parametrize(
    ("returncode", "cancelled", "timed_out", "expected"),
    [
        (0, False, False, (JobState.COMPLETED, 0, None)),
        (3, False, False, (JobState.FAILED, 3, "exit code 3")),
        (-9, False, False, (JobState.FAILED, 137, "killed by signal SIGKILL (9)")),
        (-15, True, False, (JobState.CANCELLED, 143, "cancelled")),
        (0, True, False, (JobState.CANCELLED, 0, "cancelled")),
        (-15, False, True, (JobState.TIMEOUT, 143, "time limit reached")),
    ],
)
def test_outcome(
    returncode: int, cancelled: bool, timed_out: bool, expected: tuple[object, ...]
) -> None:
    assert records.outcome(returncode, cancelled=cancelled, timed_out=timed_out) == expected


def test_record_json_round_trip_keeps_every_field() -> None:
    original = record(
        JobState.RUNNING,
        runner=ProcIdentity(10, 123, "boot"),
        task=ProcIdentity(11, 124, "boot"),
        started_at=AT,
        cancel_requested=True,
    )
    assert JobRecord.from_json(original.to_json()) == original
    assert JobRecord.from_json({**original.to_json(), "added_later": 1}) == original


def test_to_info_computes_elapsed_and_keeps_timezone() -> None:
    info = record(
        JobState.COMPLETED, exit_code=0, started_at=AT, ended_at="2026-01-01T00:00:12.5+00:00"
    ).to_info()
    assert info.elapsed_s == 2.5
    assert info.started_at == datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert (info.job_id, info.state, info.node) == ("7_1", JobState.COMPLETED, "node1")


def test_started_then_ended_records_the_outcome() -> None:
    running = records.started(record(), ProcIdentity(5), AT)
    assert (running.state, running.task, running.started_at) == (
        JobState.RUNNING,
        ProcIdentity(5),
        AT,
    )
    done = records.ended(running, 2, AT)
    assert (done.state, done.exit_code, done.ended_at) == (JobState.FAILED, 2, AT)


def test_cancel_ends_waiting_jobs_now_and_marks_running_ones() -> None:
    for waiting in (JobState.PENDING, JobState.HELD):
        cancelled = records.cancel(record(waiting), AT)
        assert (cancelled.state, cancelled.ended_at) == (JobState.CANCELLED, AT)
    running = records.cancel(record(JobState.RUNNING), AT)
    assert (running.state, running.cancel_requested) == (JobState.RUNNING, True)
    done = record(JobState.COMPLETED, exit_code=0)
    assert records.cancel(done, AT) == done


def test_release_only_moves_held_jobs() -> None:
    assert records.release(record(JobState.HELD)).state is JobState.PENDING
    assert records.release(record(JobState.CANCELLED)).state is JobState.CANCELLED


def test_failed_to_start_is_failed_like_a_missing_command() -> None:
    failed = records.failed_to_start(record(), "No such file: 'nope'", AT)
    assert (failed.state, failed.exit_code) == (JobState.FAILED, 127)
    assert failed.reason is not None and "nope" in failed.reason


def _resolve(rec: JobRecord, *, runner: bool = False, task: bool = False, age: float = 999.0):
    return records.resolve_orphan(rec, runner_alive=runner, task_alive=task, age_s=age, at=AT)


def test_resolve_orphan_trusts_a_live_runner_and_terminal_records() -> None:
    running = record(JobState.RUNNING, runner=ProcIdentity(1))
    assert _resolve(running, runner=True) == running
    done = record(JobState.FAILED, exit_code=1)
    assert _resolve(done) == done


def test_resolve_orphan_waits_for_a_runner_that_is_still_starting() -> None:
    fresh = record(JobState.PENDING)
    assert _resolve(fresh, age=1.0) == fresh
    stale = _resolve(fresh, age=records.RUNNER_START_GRACE_S + 1)
    assert stale.state is JobState.NODE_FAIL and "never started" in (stale.reason or "")


def test_resolve_orphan_keeps_a_live_task_running_then_fails_the_node() -> None:
    running = record(JobState.RUNNING, runner=ProcIdentity(1), task=ProcIdentity(2))
    assert _resolve(running, task=True) == running
    gone = _resolve(running)
    assert (gone.state, gone.ended_at) == (JobState.NODE_FAIL, AT)
    assert "exit status is unknown" in (gone.reason or "")


def test_resolve_orphan_pending_jobs_of_a_dead_runner_fail_the_node() -> None:
    pending = _resolve(record(JobState.PENDING, runner=ProcIdentity(1)))
    assert pending.state is JobState.NODE_FAIL
    assert "before the job started" in (pending.reason or "")


def test_resolve_orphan_honours_a_requested_cancel() -> None:
    rec = record(JobState.RUNNING, runner=ProcIdentity(1), cancel_requested=True)
    assert _resolve(rec).state is JobState.CANCELLED


def test_dependencies_met_is_afterany() -> None:
    assert records.dependencies_met([JobState.COMPLETED, JobState.FAILED, JobState.UNKNOWN])
    assert records.dependencies_met([])
    assert not records.dependencies_met([JobState.COMPLETED, JobState.RUNNING])
    assert not records.dependencies_met([JobState.HELD])


def test_next_to_start_keeps_order_and_bound() -> None:
    recs = [
        record(JobState.COMPLETED, job_id="1_0"),
        record(JobState.PENDING, job_id="1_1"),
        record(JobState.HELD, job_id="1_2"),
        record(JobState.PENDING, job_id="1_3"),
        record(JobState.PENDING, job_id="1_4"),
    ]
    assert [r.job_id for r in records.next_to_start(recs, 0, 2)] == ["1_1", "1_3"]
    assert [r.job_id for r in records.next_to_start(recs, 1, 2)] == ["1_1"]
    assert records.next_to_start(recs, 3, 2) == []


def test_over_time_limit() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    running = record(JobState.RUNNING, started_at=start.isoformat())
    assert records.over_time_limit(running, 60, start + timedelta(seconds=61))
    assert not records.over_time_limit(running, 60, start + timedelta(seconds=59))
    assert not records.over_time_limit(running, None, start + timedelta(days=1))
    told = running.replace(timed_out=True)
    assert not records.over_time_limit(told, 60, start + timedelta(seconds=61))


def test_array_spec_json_round_trip() -> None:
    spec = ArraySpec(
        3,
        "rea.c1.validation.r1",
        ["3_0"],
        [TaskCommand(["python", "-c", "pass"], "/w", {"A": "1"})],
        parallelism=2,
        max_parallel=4,
        time_limit_s=60.0,
        after=["1_0"],
    )
    assert ArraySpec.from_json(spec.to_json()) == spec
