"""A second campaign in the same workspace builds on the first: identical trials (same config,
data, fidelity and seed) are taken from the first campaign instead of trained again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import campaign_doc, start_campaign, wait_for

pytestmark = pytest.mark.slow


def test_second_campaign_reuses_identical_trials(workspace: Path) -> None:
    ws = workspace
    start_campaign(ws, "first")
    wait_for(lambda: campaign_doc(ws, "first")["state"] != "RUNNING", 400, "the first campaign")
    first = campaign_doc(ws, "first")
    assert first["state"] == "AWAITING_REVIEW", first.get("pause_reason")

    start_campaign(ws, "second")
    wait_for(lambda: campaign_doc(ws, "second")["state"] != "RUNNING", 400, "the second one")
    second = campaign_doc(ws, "second")
    assert second["state"] == "AWAITING_REVIEW", second.get("pause_reason")

    reused = {tid: t for tid, t in second["trials"].items() if t["reused_from"]}
    # the baseline probe at least: the same config, data and seeds as the first campaign's
    assert {"validation-baseline-s0", "validation-baseline-s1"} <= set(reused)
    for t in reused.values():
        origin_campaign, origin_trial = t["reused_from"].split("/")
        assert origin_campaign == "first"
        origin = first["trials"][origin_trial]
        assert t["jobs"] == [] and t["status"] == "succeeded"  # nothing was run for it
        assert t["metric_value"] == origin["metric_value"]
        # the same trial: config, data and seed (under another name when the first campaign's
        # proposal is planned again as `proposal.first`, the config of one of its trials)
        assert (t["key"], t["seed"]) == (origin["key"], origin["seed"])
        assert t["hypothesis_id"] in (origin["hypothesis_id"], "proposal.first")
    events = [
        json.loads(line)
        for line in (ws / "campaigns" / "second" / "journal.jsonl").read_text().splitlines()
    ]
    assert {e["trial_id"] for e in events if e["event"] == "trial_reused"} == set(reused)
    # what was reused cost nothing: no job ran for it (above), and the budget was charged only
    # for jobs that ran (the second campaign may spend its own budget on what is new: it
    # checks the first's proposal again, under the name proposal.first)
    ran = {tid for tid, t in second["trials"].items() if t["jobs"]}
    assert not ran & set(reused)


def _awaiting_review(ws: Path, cid: str, delta: dict, *, rejected: bool = False) -> None:
    """A planned campaign turned into one that confirmed `delta` (written by the real store)."""
    from rea_cli.campaign.model import Proposal, Review
    from rea_cli.campaign.state import CampaignState
    from rea_cli.campaign.store import CampaignStore
    from rea_cli.workspace import Workspace

    start_campaign(ws, cid, launch=False)
    store = CampaignStore(Workspace(ws), cid)
    c = store.load()
    c.state = CampaignState.REJECTED if rejected else CampaignState.AWAITING_REVIEW
    c.proposal = Proposal(
        hypothesis_id="search-r1-o3",
        delta=delta,
        metric=c.metric,
        direction=c.direction,
        baseline_mean=0.70,
        candidate_mean=0.72,
        gain=0.02,
        ci_low=0.015,
        ci_high=0.025,
        n=5,
        test_gain=0.018,
        significant=True,
    )
    if rejected:
        c.review = Review(decision="rejected", by="someone", at="2026-11-29T00:00:00+00:00")
    store.save(c)


def test_an_earlier_confirmed_proposal_is_checked_first(workspace: Path) -> None:
    """A campaign awaiting review confirmed a change: the next campaign on the same model and
    data plans it as a hypothesis of its own, ranked first (its prior is the gain it
    confirmed), from the insights history. A rejected proposal is not tried again."""
    ws = workspace
    _awaiting_review(ws, "first", {"features.numeric_buckets": 16, "train.epochs": 4})
    _awaiting_review(ws, "refused", {"model.embedding_dim": 4}, rejected=True)
    start_campaign(ws, "next", launch=False)
    plan = json.loads((ws / "campaigns" / "next" / "plan.json").read_text())
    top = plan["ranking"][0]["hypothesis_id"]
    assert top == "proposal.first", [r["hypothesis_id"] for r in plan["ranking"]]
    h = plan["hypotheses"][top]
    assert h["source"] == "insights_history"
    assert h["delta"] == {"features.numeric_buckets": 16, "train.epochs": 4}
    assert "campaign first confirmed" in h["trigger"]
    assert not any(hid.startswith("proposal.refused") for hid in plan["hypotheses"])
