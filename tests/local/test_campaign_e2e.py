"""A whole campaign on the embedded local backend: real training, real DuckDB, real processes.

`rea launch` returns at once; the campaign then advances phase after phase through detached
wake-up waiters only, and ends AWAITING_REVIEW with no rea process left alive.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import campaign_doc, processes_mentioning, run_rea, start_campaign, wait_for

pytestmark = pytest.mark.slow


def test_campaign_runs_to_review_by_itself(workspace: Path) -> None:
    ws = workspace
    start_campaign(ws, "e2e")
    assert campaign_doc(ws, "e2e")["state"] == "RUNNING"

    # `rea watch` shows live progress; Ctrl-C stops watching, not the campaign
    watcher = subprocess.Popen(
        [sys.executable, "-m", "rea_cli", "--workspace", str(ws), "watch", "e2e"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as at a terminal: a runner started in the background (CI) ignores SIGINT, and
        # its children would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # into the live loop (its first line), however long the interpreter takes to start
    assert watcher.stdout is not None
    first = watcher.stdout.readline()
    time.sleep(1)
    watcher.send_signal(signal.SIGINT)
    rest, err = watcher.communicate(timeout=30)
    out = first + rest
    assert watcher.returncode == 0, err
    assert "validation" in out and "stopped watching" in out
    assert campaign_doc(ws, "e2e")["state"] == "RUNNING"

    wait_for(lambda: campaign_doc(ws, "e2e")["state"] != "RUNNING", 400, "the campaign to end")
    doc = campaign_doc(ws, "e2e")
    assert doc["state"] == "AWAITING_REVIEW", doc.get("pause_reason")
    assert doc["proposal"] is not None
    phases = doc["phases"]
    assert phases["validation"]["status"] == "done"
    assert phases["validation"]["rounds"][0]["kind"] == "probe"
    assert 1 <= len(phases["validation"]["selected"]) <= 2  # max_hypotheses
    assert phases["validation"]["gate"]["detail"]
    # combination runs only when two compatible hypotheses (of two strategies) passed
    combination = phases["combination"]
    assert combination["status"] == ("done" if combination["rounds"] else "skipped")
    assert combination["gate"]["detail"]
    assert phases["exploitation"]["status"] == "done"
    kinds = [r["kind"] for r in phases["exploitation"]["rounds"]]
    assert "batch" in kinds  # the search ran
    proposal, candidate = doc["proposal"], doc["proposal"]["candidate"]
    if candidate not in (None, "baseline"):
        assert "confirmation" in kinds
        confirm = {(t["hypothesis_id"], t["seed"]) for t in doc["trials"].values()}
        for h in (candidate, "baseline"):  # each search round's candidate is confirmed
            assert {(h, s) for s in range(1000, 1005)} <= confirm
        assert proposal["n"] == 5
    assert (proposal["hypothesis_id"] == candidate) == proposal["significant"]
    succeeded = [t for t in doc["trials"].values() if t["status"] == "succeeded"]
    assert len(succeeded) == len(doc["trials"]) >= 7
    assert all(t["metric_value"] and 0.5 < t["metric_value"] <= 1.0 for t in succeeded)
    assert doc["budget"]["spent_gpu_hours"] > 0
    assert doc["budget"]["reserved_gpu_hours"] == 0

    # nothing of rea (or of its trials) is alive once the campaign has ended
    wait_for(lambda: not processes_mentioning(str(ws)), 30, "rea processes to exit")

    # the insights DB holds every trial, attempt and the proposal
    con = duckdb.connect(str(ws / "insights-analyst.duckdb"), read_only=True)
    try:
        n_trials = con.execute("SELECT count(*) FROM trials WHERE campaign_id='e2e'").fetchone()[0]
        n_distinct = con.execute(
            "SELECT count(DISTINCT trial_id) FROM trials WHERE campaign_id='e2e'"
        ).fetchone()[0]
        state = con.execute("SELECT state FROM campaigns WHERE campaign_id='e2e'").fetchone()[0]
        n_props = con.execute("SELECT count(*) FROM proposals WHERE campaign_id='e2e'").fetchone()[
            0
        ]
    finally:
        con.close()
    assert n_trials == n_distinct == len(doc["trials"])
    assert state == "AWAITING_REVIEW"
    assert n_props == 1

    # another resume is a no-op: same state file, nothing submitted
    before = (ws / "campaigns" / "e2e" / "campaign.json").read_bytes()
    again = run_rea(ws, "resume", "e2e")
    assert again.returncode == 0, again.stderr
    assert "noop" in again.stdout
    assert (ws / "campaigns" / "e2e" / "campaign.json").read_bytes() == before
    assert not processes_mentioning(str(ws))

    status = run_rea(ws, "status", "e2e", "--json")
    assert json.loads(status.stdout)["state"] == "AWAITING_REVIEW"
    report = run_rea(ws, "report", "e2e")
    assert report.returncode == 0 and "Proposal" in report.stdout
    # a change that loses on the test split is accepted only with --force (and says why)
    force = ["--force"] if (doc["proposal"]["test_gain"] or 0) < 0 else []
    review = run_rea(ws, "review", "e2e", "--accept", "--note", "ship it", *force)
    assert review.returncode == 0, review.stderr
    assert campaign_doc(ws, "e2e")["state"] == "ACCEPTED"
    accepted = json.loads((ws / "campaigns" / "e2e" / "accepted-config.json").read_text())
    assert accepted["hypothesis_id"] == doc["proposal"]["hypothesis_id"]
    for key, value in doc["proposal"]["delta"].items():
        section, name = key.split(".", 1)
        assert accepted["config"][section][name] == value
