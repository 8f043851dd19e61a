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
        assert (t["hypothesis_id"], t["seed"]) == (origin["hypothesis_id"], origin["seed"])
    events = [
        json.loads(line)
        for line in (ws / "campaigns" / "second" / "journal.jsonl").read_text().splitlines()
    ]
    assert {e["trial_id"] for e in events if e["event"] == "trial_reused"} == set(reused)
    # what was reused cost nothing: the second campaign spent less
    assert second["budget"]["spent_gpu_hours"] < first["budget"]["spent_gpu_hours"]
