"""A resume step that keeps failing on an unexpected error does not retry forever: after three
failures in a row the campaign is FAILED, with the error in its journal."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import campaign_doc, processes_mentioning, run_rea, start_campaign, wait_for


def test_three_failed_resumes_make_the_campaign_failed(workspace: Path) -> None:
    start_campaign(workspace, "broken")
    # damage the plan behind rea's back (the approval hash no longer matters once RUNNING)
    (workspace / "campaigns" / "broken" / "plan.json").write_text('{"not": "a plan"}')
    for _ in range(3):
        if campaign_doc(workspace, "broken")["state"] == "FAILED":
            break
        done = run_rea(workspace, "resume", "broken")
        assert done.returncode != 0
    wait_for(lambda: campaign_doc(workspace, "broken")["state"] == "FAILED", 60, "FAILED")
    doc = campaign_doc(workspace, "broken")
    assert "resume steps failed in a row" in doc["pause_reason"]
    events = [
        json.loads(line)
        for line in (workspace / "campaigns" / "broken" / "journal.jsonl").read_text().splitlines()
    ]
    failures = [e for e in events if e["event"] == "resume_failed"]
    assert len(failures) == 3 and "ValidationError" in failures[0]["error"]
    # a later wake-up or resume leaves a FAILED campaign alone
    assert "noop" in run_rea(workspace, "resume", "broken").stdout
    # and its jobs were cancelled: nothing of it keeps running
    wait_for(lambda: not processes_mentioning(str(workspace)), 30, "the campaign's jobs to stop")
