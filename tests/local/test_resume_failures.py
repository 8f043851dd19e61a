"""A resume step that keeps failing on an unexpected error does not retry forever: after three
failures in a row the campaign is FAILED, with the error in its journal."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from rea_cli.executor.local.backend import LocalScheduler
from tests.conftest import campaign_doc, processes_mentioning, run_rea, start_campaign, wait_for


def test_three_failed_resumes_make_the_campaign_failed(workspace: Path) -> None:
    start_campaign(workspace, "broken")
    doc = campaign_doc(workspace, "broken")
    rnd = doc["phases"][doc["phase"]]["rounds"][-1]
    sched = LocalScheduler(workspace / ".rea" / "local")
    sched.cancel([rnd["wakeup_job_id"]])  # the test runs the resume steps itself
    wait_for(
        lambda: all(i.state.is_terminal for i in sched.states(rnd["array_job_ids"]).values()),
        300,
        "the trials to end",
    )
    # damage the workspace behind rea's back: the reuse index (.rea/results/) is now a file,
    # so ingesting the finished trials fails the same way every time (a plan.json edited
    # behind rea's back is no longer such an error: it pauses the campaign, tests/security)
    results = workspace / ".rea" / "results"
    assert not results.exists()
    results.write_text("not a folder")
    for _ in range(3):
        if campaign_doc(workspace, "broken")["state"] == "FAILED":
            break
        done = run_rea(workspace, "resume", "broken")
        assert done.returncode != 0
        assert "Traceback" not in done.stderr and done.stderr.startswith("error: ")
    wait_for(lambda: campaign_doc(workspace, "broken")["state"] == "FAILED", 60, "FAILED")
    doc = campaign_doc(workspace, "broken")
    assert "resume steps failed in a row" in doc["pause_reason"]
    events = [
        json.loads(line)
        for line in (workspace / "campaigns" / "broken" / "journal.jsonl").read_text().splitlines()
    ]
    failures = [e for e in events if e["event"] == "resume_failed"]
    assert len(failures) == 3 and "results" in failures[0]["error"]
    # the failure reached the analyst copy too (the resume that failed still synced)
    con = duckdb.connect(str(workspace / "insights-analyst.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT state FROM campaigns").fetchall() == [("FAILED",)]
    finally:
        con.close()
    # a later wake-up or resume leaves a FAILED campaign alone
    assert "noop" in run_rea(workspace, "resume", "broken").stdout
    # and its jobs were cancelled: nothing of it keeps running
    wait_for(lambda: not processes_mentioning(str(workspace)), 30, "the campaign's jobs to stop")
