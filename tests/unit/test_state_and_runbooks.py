"""The campaign state machine, the journal, the config loader and the runbooks."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from rea_cli.campaign.journal import append_event, read_events
from rea_cli.campaign.state import TRANSITIONS, CampaignState, check_transition
from rea_cli.errors import RefusedError, UsageError
from rea_cli.runbooks import Failure, choose_action, diagnose, load_runbooks

S = CampaignState


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
    (tmp_path / "bad.toml").write_text('[[runbook]]\nid = "x"\naction = "explode"\n')
    with pytest.raises(UsageError, match=r"bad\.toml"):
        load_runbooks(tmp_path)
