"""The campaign state machine (and its trials', rounds' and phases'), the journal, the config
loader and the runbooks."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from rea_cli.campaign.journal import append_event, read_events
from rea_cli.campaign.model import PhaseRecord, Round, TrialRecord
from rea_cli.campaign.state import (
    PHASE_TRANSITIONS,
    ROUND_TRANSITIONS,
    TRANSITIONS,
    TRIAL_TRANSITIONS,
    CampaignState,
    PhaseStatus,
    RoundStatus,
    StateError,
    TrialStatus,
    check_transition,
)
from rea_cli.errors import RefusedError, UsageError
from rea_cli.runbooks import Failure, Footprint, choose_action, diagnose, load_runbooks

S = CampaignState
T, R, P = TrialStatus, RoundStatus, PhaseStatus


def test_state_machine_happy_path() -> None:
    path = [S.PLANNED, S.APPROVED, S.RUNNING, S.RUNNING, S.AWAITING_REVIEW, S.ACCEPTED]
    for a, b in itertools.pairwise(path):
        check_transition("c", a, b)


@pytest.mark.parametrize(
    ("current", "target", "hint"),
    [
        (S.PLANNED, S.RUNNING, "rea approve c"),
        (S.APPROVED, S.APPROVED, "rea launch c"),
        (S.ACCEPTED, S.RUNNING, "rea plan"),
        (S.AWAITING_REVIEW, S.RUNNING, "rea review c"),
    ],
)
def test_refused_transitions_say_what_to_do(current: S, target: S, hint: str) -> None:
    with pytest.raises(RefusedError, match=hint):
        check_transition("c", current, target)


def test_final_states_have_no_way_out() -> None:
    for state in S:
        assert (not TRANSITIONS[state]) == state.is_final


def _trial(status: TrialStatus) -> TrialRecord:
    return TrialRecord(phase="validation", hypothesis_id="baseline", seed=0, status=status)


def _round(status: RoundStatus) -> Round:
    return Round(round=1, trial_ids=["t1"], status=status)


def test_every_part_status_has_a_row() -> None:
    assert set(TRIAL_TRANSITIONS) == set(T)
    assert set(ROUND_TRANSITIONS) == set(R)
    assert set(PHASE_TRANSITIONS) == set(P)


@pytest.mark.parametrize(
    ("record", "path"),
    [
        (_trial(T.PENDING), [T.SUBMITTED, T.FAILED, T.PENDING, T.SUBMITTED, T.SUCCEEDED]),  # retry
        (_trial(T.PENDING), [T.SUCCEEDED]),  # reused from an identical trial
        (_trial(T.FAILED), [T.CANCELLED]),
        (_round(R.SUBMITTING), [R.SUBMITTING, R.RELEASED, R.RELEASED]),
        (PhaseRecord(), [P.SUBMITTED, P.SUBMITTED, P.DONE]),
        (PhaseRecord(), [P.SKIPPED]),
    ],
)
def test_part_status_changes_in_the_table_are_taken(
    record: TrialRecord | Round | PhaseRecord, path: list[Any]
) -> None:
    for target in path:
        record.set_status(target)
        assert record.status is target


@pytest.mark.parametrize(
    ("record", "target", "message"),
    [
        (_trial(T.SUCCEEDED), T.PENDING, "trial: succeeded -> pending"),  # a result stays
        (_trial(T.CANCELLED), T.SUBMITTED, "trial: cancelled -> submitted"),
        (_trial(T.PENDING), T.FAILED, "trial: pending -> failed"),  # only a submitted one fails
        (_round(R.RELEASED), R.SUBMITTING, "round: released -> submitting"),
        (PhaseRecord(status=P.DONE), P.SUBMITTED, "phase: done -> submitted"),
        (PhaseRecord(status=P.SUBMITTED), P.SKIPPED, "phase: submitted -> skipped"),
    ],
)
def test_part_status_changes_outside_the_table_are_refused(
    record: TrialRecord | Round | PhaseRecord, target: Any, message: str
) -> None:
    before = record.status
    with pytest.raises(StateError, match=f"^{message} is not a valid change$"):
        record.set_status(target)
    assert record.status is before  # refused before anything changed


def test_journal_sequence_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    append_event(path, "c", "planned")
    with open(path, "a") as fh:
        fh.write('{"seq": 2, "event": "tor')  # a crash mid-append
    append_event(path, "c", "approved", by="me")
    events = read_events(path)
    assert [e["event"] for e in events] == ["planned", "approved"]
    assert [e["seq"] for e in events] == [1, 2]
    assert events[1]["by"] == "me"


@pytest.fixture(scope="module")
def books():
    return load_runbooks()


@pytest.mark.parametrize(
    ("failure", "runbook", "action"),
    [
        (Failure("nan_loss", "FAILED", 3), "diverged", "give_up"),
        (Failure("oom", "FAILED", 4), "oom", "retry_with"),
        (Failure(None, "OUT_OF_MEMORY", None), "oom-killed", "retry_with"),
        (Failure(None, "TIMEOUT", None), "timeout", "retry"),
        (Failure(None, "NODE_FAIL", None), "preempted", "retry"),
        (Failure("data_error", "FAILED", 2), "bad-input", "pause_campaign"),
        (Failure("data_changed", "FAILED", 2), "data-changed", "pause_campaign"),
        (Failure("invalid_result", "COMPLETED", 0), "invalid-result", "give_up"),
        (Failure("error", "FAILED", 1), "unknown", "retry"),
    ],
)
def test_runbooks_diagnose(books, failure: Failure, runbook: str, action: str) -> None:
    book = diagnose(books, failure)
    assert (book.id, book.action) == (runbook, action)


def test_oom_retry_halves_batch_size(books) -> None:
    book = diagnose(books, Failure("oom", "FAILED", 4))
    config = {"train": {"batch_size": 512}}
    d = choose_action(book, Failure("oom", "FAILED", 4), attempts=1, max_attempts=3, config=config)
    assert d.action == "retry_with" and d.change == {"train.batch_size": 256}


OOM_KILLED = Failure(None, "OUT_OF_MEMORY", 1, "step 7_0.0 was killed at its memory limit")
BATCH = {"train": {"batch_size": 512}}


def _oom(books, footprint: Footprint, attempts: int = 1):
    book = diagnose(books, OOM_KILLED)
    return choose_action(
        book, OOM_KILLED, attempts=attempts, max_attempts=3, config=BATCH, footprint=footprint
    )


def test_oom_kill_asks_for_more_memory_within_what_a_node_offers(books) -> None:
    d = _oom(books, Footprint(mem_gb=2.0, max_mem_gb=21.2, fixed_mb=900.0))
    assert (d.action, d.change) == ("retry_with", {"resources.mem_gb": 4.0})
    d = _oom(books, Footprint(mem_gb=16.0, max_mem_gb=21.2, fixed_mb=900.0))
    assert d.change == {"resources.mem_gb": 21.2}  # capped at the node


def test_oom_kill_at_the_most_memory_halves_the_batch(books) -> None:
    d = _oom(books, Footprint(mem_gb=4.0, max_mem_gb=4.0, fixed_mb=900.0))
    assert (d.action, d.change) == ("retry_with", {"train.batch_size": 256})
    d = _oom(books, Footprint(mem_gb=None, max_mem_gb=None))  # no --mem: nothing to raise
    assert d.change == {"train.batch_size": 256}


@pytest.mark.parametrize(
    ("footprint", "why"),
    [
        (
            Footprint(mem_gb=1.0, max_mem_gb=1.0, fixed_mb=1325.0),
            "its data, model and optimizer state alone take about 1325 MB of its 1024 MB: "
            "a smaller batch cannot help",
        ),
        (
            Footprint(mem_gb=0.5, max_mem_gb=0.5, before_ready=True),
            "it ran out of memory before its first batch: its data and model alone do not fit "
            "in 0.5 GB, whatever the batch size",
        ),
    ],
)
def test_oom_kill_that_no_batch_size_fixes_excludes_the_hypothesis(
    books, footprint: Footprint, why: str
) -> None:
    d = _oom(books, footprint)
    assert (d.action, d.change) == ("give_up", {})
    assert d.detail.startswith(OOM_KILLED.message + "; it already had")
    assert why in d.detail and d.detail.endswith("the hypothesis is excluded, not retried")


def test_guardrail_stops_retries(books) -> None:
    f = Failure(None, "TIMEOUT", None)
    d = choose_action(diagnose(books, f), f, attempts=3, max_attempts=3, config={})
    assert d.action == "give_up" and "retries exhausted" in d.detail


def test_workspace_runbooks_take_priority_and_are_validated(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text(
        '[[runbook]]\nid = "site-timeout"\ntitle = "t"\nmatch.job_state = ["TIMEOUT"]\n'
        'diagnosis = "site says"\naction = "give_up"\n'
    )
    books = load_runbooks(tmp_path)
    assert diagnose(books, Failure(None, "TIMEOUT", None)).id == "site-timeout"
    (tmp_path / "bad.toml").write_text(
        '[[runbook]]\nid = "x"\ntitle = "t"\ndiagnosis = "d"\naction = "retry_with"\n'
        'change = { "model.embedding_dim" = 8 }\n'
    )
    with pytest.raises(UsageError, match=r"cannot change model\.embedding_dim"):
        load_runbooks(tmp_path)
    (tmp_path / "bad.toml").write_text(
        '[[runbook]]\nid = "x"\ntitle = "t"\ndiagnosis = "d"\naction = "retry_with"\n'
        'change = { "resources.mem_gb" = "8G" }\n'
    )
    with pytest.raises(UsageError, match=r"resources\.mem_gb = '8G': give a number"):
        load_runbooks(tmp_path)
    (tmp_path / "bad.toml").write_text('[[runbook]]\nid = "x"\naction = "explode"\n')
    with pytest.raises(UsageError, match=r"bad\.toml"):
        load_runbooks(tmp_path)
