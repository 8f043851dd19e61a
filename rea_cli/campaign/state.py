"""The campaign state machine: states, allowed transitions, and what each refusal tells the user."""

from __future__ import annotations

import enum

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
