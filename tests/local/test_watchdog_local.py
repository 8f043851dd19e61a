"""`rea tick` on the embedded local backend: real campaigns, real processes, real job records.

A campaign whose wake-up job was cancelled stalls RUNNING with nothing alive; one tick resumes it
and it then reaches AWAITING_REVIEW by itself. A tick on a healthy campaign does nothing, two ticks
never both act, and a campaign whose measured spend crosses its budget is cancelled and paused.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rea_cli.campaign.store import CampaignStore
from rea_cli.executor.local.backend import LocalScheduler
from rea_cli.executor.scheduler import JobState
from rea_cli.workspace import Workspace
from tests.conftest import campaign_doc, processes_mentioning, run_rea, start_campaign, wait_for

pytestmark = pytest.mark.slow


def _round(doc: dict) -> dict:
    return doc["phases"][doc["phase"]]["rounds"][-1]


def _events(ws: Path, cid: str) -> list[dict]:
    path = ws / "campaigns" / cid / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _tick_json(ws: Path) -> dict:
    done = run_rea(ws, "tick", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _trials_ended(sched: LocalScheduler, ids: list[str]) -> bool:
    return all(i.state.is_terminal for i in sched.states(ids).values())


def test_tick_resumes_a_campaign_whose_wakeup_was_cancelled(workspace: Path) -> None:
    ws = workspace
    start_campaign(ws, "wd")
    doc = campaign_doc(ws, "wd")
    rnd = _round(doc)
    wakeup, trials = rnd["wakeup_job_id"], rnd["array_job_ids"]
    sched = LocalScheduler(ws / ".rea" / "local")
    sched.cancel([wakeup])
    assert sched.states([wakeup])[wakeup].state is JobState.CANCELLED

    # the trials end, nothing of rea is left to notice: the campaign is stuck RUNNING
    wait_for(lambda: _trials_ended(sched, trials), 300, "the trials to end")
    wait_for(lambda: not processes_mentioning(str(ws)), 60, "every process to exit")
    stuck = campaign_doc(ws, "wd")
    assert stuck["state"] == "RUNNING"
    assert _round(stuck)["wakeup_job_id"] == wakeup

    # two ticks at once: exactly one resumes (the other finds the tick lock, or nothing to do)
    cmd = [sys.executable, "-m", "rea_cli", "--workspace", str(ws), "tick", "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    reports = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    actions = [c["action"] for r in reports for c in r["campaigns"]]
    assert actions.count("resumed") == 1, reports
    resumed = next(c for r in reports for c in r["campaigns"] if c["action"] == "resumed")
    assert f"wake-up {wakeup}" in resumed["reason"] and "CANCELLED" in resumed["reason"]
    assert [e["event"] for e in _events(ws, "wd")].count("watchdog_resumed") == 1

    wait_for(lambda: campaign_doc(ws, "wd")["state"] != "RUNNING", 400, "the campaign to end")
    done = campaign_doc(ws, "wd")
    assert done["state"] == "AWAITING_REVIEW", done.get("pause_reason")
    assert done["proposal"] is not None
    assert all(t["status"] == "succeeded" for t in done["trials"].values())

    # nothing left to do: a further tick checks nothing and changes nothing
    before = (ws / "campaigns" / "wd" / "campaign.json").read_bytes()
    again = _tick_json(ws)
    assert again["campaigns"] == [] and again["message"] == "no running campaign"
    assert (ws / "campaigns" / "wd" / "campaign.json").read_bytes() == before


def test_tick_leaves_a_healthy_campaign_alone(workspace: Path) -> None:
    ws = workspace
    start_campaign(ws, "ok")
    try:
        for _ in range(2):
            report = _tick_json(ws)
            (entry,) = report["campaigns"]
            assert entry["campaign_id"] == "ok"
            # busy when its own wake-up happens to be resuming it right now
            assert entry["action"] in ("none", "skipped-busy"), entry
        names = [e["event"] for e in _events(ws, "ok")]
        assert "watchdog_resumed" not in names and "budget_exceeded" not in names
        text = run_rea(ws, "tick")
        assert text.returncode == 0 and "1 campaign(s) checked, 0 acted on" in text.stdout
    finally:
        run_rea(ws, "cancel", "ok")
    wait_for(lambda: not processes_mentioning(str(ws)), 60, "every process to exit")


def test_a_second_tick_exits_quietly_while_one_runs(workspace: Path) -> None:
    ws = workspace
    (ws / ".rea").mkdir(exist_ok=True)
    fd = os.open(ws / ".rea" / "tick.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running tick holds it
        report = _tick_json(ws)
        assert report == {**report, "ran": False, "message": "another tick is running"}
        text = run_rea(ws, "tick")
        assert text.returncode == 0 and "another tick is running" in text.stdout
    finally:
        os.close(fd)
    assert _tick_json(ws)["ran"] is True


def test_tick_cancels_and_pauses_a_campaign_over_budget(workspace: Path) -> None:
    ws = workspace
    start_campaign(ws, "over")
    sched = LocalScheduler(ws / ".rea" / "local")
    trials = _round(campaign_doc(ws, "over"))["array_job_ids"]
    wait_for(
        lambda: any(i.state is JobState.RUNNING for i in sched.states(trials).values()),
        120,
        "a trial to start",
    )
    # an approved budget far below what one running trial already used (1 device each)
    store = CampaignStore(Workspace(ws), "over")
    with store.lock(wait_s=60):
        c = store.load()
        c.budget.approved_gpu_hours = 1e-7
        store.save(c)

    report = _tick_json(ws)
    (entry,) = report["campaigns"]
    assert entry["action"] == "paused", entry
    assert "exceeds the approved" in entry["reason"]
    doc = campaign_doc(ws, "over")
    assert doc["state"] == "PAUSED" and "exceeds the approved" in doc["pause_reason"]
    # cancelled tasks are dead; their records turn CANCELLED at the runner's next poll
    wait_for(
        lambda: all(i.state.is_terminal for i in sched.states(trials).values()),
        30,
        "every trial to be recorded as ended",
    )
    names = [e["event"] for e in _events(ws, "over")]
    assert "budget_exceeded" in names
    wait_for(lambda: not processes_mentioning(str(ws)), 60, "every process to exit")

    # a paused campaign is reported, never touched again
    again = _tick_json(ws)
    (entry,) = again["campaigns"]
    assert entry["action"] == "none" and entry["state"] == "PAUSED"
    assert entry["stuck"] and entry["stuck"][0].startswith("paused:")
    assert campaign_doc(ws, "over")["state"] == "PAUSED"
