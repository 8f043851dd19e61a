"""State machines of a campaign and of its parts: the states, allowed transitions, and what each
refusal tells the user. Trial, round and phase statuses are enums with transition tables like the
campaign's own, so an impossible change is a bug caught where it happens, not a state on disk."""

from __future__ import annotations

import enum
from typing import TypeVar

from rea_cli.errors import RefusedError


class CampaignState(enum.StrEnum):
    PLANNED = "PLANNED"
    APPROVED = "APPROVED"
    RUNNING = "RUNNING"
    AWAITING_REVIEW = "AWAITING_REVIEW"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    PAUSED = "PAUSED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in (
            CampaignState.ACCEPTED,
            CampaignState.REJECTED,
            CampaignState.CANCELLED,
            CampaignState.FAILED,
        )


S = CampaignState
TRANSITIONS: dict[CampaignState, frozenset[CampaignState]] = {
    S.PLANNED: frozenset({S.APPROVED, S.CANCELLED}),
    S.APPROVED: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset({S.RUNNING, S.AWAITING_REVIEW, S.PAUSED, S.CANCELLED, S.FAILED}),
    S.PAUSED: frozenset({S.RUNNING, S.CANCELLED, S.AWAITING_REVIEW}),
    S.AWAITING_REVIEW: frozenset({S.ACCEPTED, S.REJECTED}),
    S.ACCEPTED: frozenset(),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(),
}

# What to tell a user whose command needs a campaign in another state.
_HINTS: dict[CampaignState, str] = {
    S.PLANNED: "approve it first with `rea approve {cid}`",
    S.APPROVED: "launch it with `rea launch {cid}`",
    S.RUNNING: "it is running; follow it with `rea watch {cid}` or stop it with `rea cancel {cid}`",
    S.PAUSED: "it is paused; see `rea status {cid}`",
    S.AWAITING_REVIEW: "it awaits review: `rea review {cid} --accept` or `--reject`",
}


def check_transition(campaign_id: str, current: CampaignState, target: CampaignState) -> None:
    """Raise RefusedError with one actionable line when current -> target is not allowed."""
    if target in TRANSITIONS[current]:
        return
    hint = _HINTS.get(current, "it has ended; plan a new campaign with `rea plan`")
    raise RefusedError(
        f"campaign {campaign_id} is {current.value}, cannot become {target.value}; "
        + hint.format(cid=campaign_id)
    )


class TrialStatus(enum.StrEnum):
    """A trial's outcome so far (its attempts' job states are in its job records)."""

    PENDING = "pending"  # recorded, not (yet) submitted; or failed and about to be retried
    SUBMITTED = "submitted"  # a job of it is queued or running
    SUCCEEDED = "succeeded"  # a usable result (trained here, or reused from an identical trial)
    FAILED = "failed"  # the last attempt failed; the runbooks decide whether it is retried
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        return self in (TrialStatus.SUCCEEDED, TrialStatus.FAILED, TrialStatus.CANCELLED)


class RoundStatus(enum.StrEnum):
    """A round is one array + its wake-up; these are the persisted steps of its submission."""

    SUBMITTING = "submitting"  # intent recorded (specs written); array/wake-up may be missing
    RELEASED = "released"  # array and wake-up submitted, tasks released


class PhaseStatus(enum.StrEnum):
    PENDING = "pending"
    SUBMITTED = "submitted"  # at least one round submitted; more may follow
    DONE = "done"
    SKIPPED = "skipped"


T = TrialStatus
TRIAL_TRANSITIONS: dict[TrialStatus, frozenset[TrialStatus]] = {
    T.PENDING: frozenset({T.PENDING, T.SUBMITTED, T.SUCCEEDED, T.CANCELLED}),
    T.SUBMITTED: frozenset({T.SUBMITTED, T.SUCCEEDED, T.FAILED, T.CANCELLED}),
    T.FAILED: frozenset({T.FAILED, T.PENDING, T.CANCELLED}),
    T.SUCCEEDED: frozenset({T.SUCCEEDED}),
    T.CANCELLED: frozenset({T.CANCELLED}),
}
R = RoundStatus
ROUND_TRANSITIONS: dict[RoundStatus, frozenset[RoundStatus]] = {
    R.SUBMITTING: frozenset({R.SUBMITTING, R.RELEASED}),
    R.RELEASED: frozenset({R.RELEASED}),
}
P = PhaseStatus
PHASE_TRANSITIONS: dict[PhaseStatus, frozenset[PhaseStatus]] = {
    P.PENDING: frozenset({P.PENDING, P.SUBMITTED, P.DONE, P.SKIPPED}),
    P.SUBMITTED: frozenset({P.SUBMITTED, P.DONE}),
    P.DONE: frozenset({P.DONE}),
    P.SKIPPED: frozenset({P.SKIPPED}),
}

E = TypeVar("E", TrialStatus, RoundStatus, PhaseStatus)


class StateError(RuntimeError):
    """An impossible status change: a bug in rea, never the user's input."""


def checked(table: dict[E, frozenset[E]], what: str, current: E, target: E) -> E:
    """`target` when current -> target is in `table`, else StateError naming both."""
    if target not in table[current]:
        raise StateError(f"{what}: {current.value} -> {target.value} is not a valid change")
    return target
