"""Running campaigns that meet a tampered plan, a broken neighbour, bad data and a killed
resume (issue 10): real campaigns on the local backend, real trials, real DuckDB files.

- a plan edited while the campaign runs (with campaign.json's copy of its hash) pauses it at
  the next resume, with the reason in `rea status`, submitting nothing; restored, it goes on;
- `rea tick` checks each campaign on its own: a broken one is its own line, the next is resumed;
- data that changed after approval pauses the campaign with the trainer's own message;
- a resume killed after ingesting leaves the DB behind the files; the next tick catches up.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from rea_cli.executor.local.backend import LocalScheduler
from rea_cli.insights import folder_digest, read_watermarks
from tests.conftest import campaign_doc, processes_mentioning, run_rea, start_campaign, wait_for

pytestmark = pytest.mark.slow


def _events(ws: Path, cid: str) -> list[dict]:
    path = ws / "campaigns" / cid / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@contextmanager
def _campaign_lock(ws: Path, cid: str) -> Iterator[None]:
    """Hold the campaign's lock, as rea does: no wake-up writes while the test edits."""
    fd = os.open(ws / "campaigns" / cid / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _copy(ws: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(ws / "insights-analyst.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _no_traceback(done: object) -> None:
    text = done.stdout + done.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in text, text


def _cancel_and_wait(ws: Path, *cids: str) -> None:
    for cid in cids:
        if campaign_doc(ws, cid)["state"] in ("RUNNING", "PAUSED"):
            run_rea(ws, "cancel", cid)
    wait_for(lambda: not processes_mentioning(str(ws)), 120, "every process to exit")


def _set_hash(ws: Path, cid: str) -> None:
    path = ws / "campaigns" / cid / "campaign.json"
    doc = json.loads(path.read_text())
    plan = (ws / "campaigns" / cid / "plan.json").read_bytes()
    doc["plan_hash"] = "sha256:" + hashlib.sha256(plan).hexdigest()
    path.write_text(json.dumps(doc))


def test_a_plan_edited_while_running_pauses_until_restored(workspace: Path) -> None:
    ws = workspace
    start_campaign(ws, "ed")
    plan_path = ws / "campaigns/ed/plan.json"
    with _campaign_lock(ws, "ed"):
        approved = plan_path.read_bytes()
        plan = json.loads(approved)
        plan["engine"]["exploitation_batch"] = 12  # 12 trials per search batch instead of 2
        plan_path.write_text(json.dumps(plan))
        _set_hash(ws, "ed")  # campaign.json agrees with the edited plan: still not approved
        trials = set(campaign_doc(ws, "ed")["trials"])

    done = run_rea(ws, "resume", "ed")
    _no_traceback(done)
    assert done.returncode == 0 and ": paused:" in done.stdout, done.stdout
    doc = campaign_doc(ws, "ed")
    assert doc["state"] == "PAUSED" and doc["pause_kind"] == "approval"
    assert "plan.json was edited after approval" in doc["pause_reason"]
    assert set(doc["trials"]) == trials  # nothing submitted
    status = run_rea(ws, "status", "ed")
    assert "paused: " in status.stdout and "edited after approval" in status.stdout
    paused = [e for e in _events(ws, "ed") if e["event"] == "state" and e["state"] == "PAUSED"]
    assert paused and paused[-1]["kind"] == "approval"
    assert _copy(ws, "SELECT state FROM campaigns") == [("PAUSED",)]  # synced, not stale

    # a wake-up meanwhile changes nothing; restoring the approved plan lets it go on
    with _campaign_lock(ws, "ed"):
        plan_path.write_bytes(approved)
        _set_hash(ws, "ed")
    done = run_rea(ws, "resume", "ed")
    _no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert campaign_doc(ws, "ed")["state"] != "PAUSED"
    lifted = [e for e in _events(ws, "ed") if e["event"] == "state" and e["previous"] == "PAUSED"]
    assert lifted and "cause of the pause is gone" in lifted[-1]["reason"]
    _cancel_and_wait(ws, "ed")


def test_tick_checks_each_campaign_on_its_own(workspace: Path) -> None:
    ws = workspace
    for cid in ("a", "b"):
        start_campaign(ws, cid)
    sched = LocalScheduler(ws / ".rea" / "local")
    rounds = {}
    for cid in ("a", "b"):
        doc = campaign_doc(ws, cid)
        rounds[cid] = doc["phases"][doc["phase"]]["rounds"][-1]
        sched.cancel([rounds[cid]["wakeup_job_id"]])  # nothing will wake either up
    done = run_rea(
        ws,
        *[
            "plan",
            "--model",
            "lr",
            "--dataset",
            "synthetic",
            "--budget",
            "2gpu-h",
            "--profile",
            "tiny",
            "--id",
            "c",
        ],
    )
    assert done.returncode == 0, done.stderr
    (ws / "campaigns/c/campaign.json").write_bytes(b"\xff\xfe{ broken")
    trials = [j for cid in ("a", "b") for j in rounds[cid]["array_job_ids"]]
    wait_for(
        lambda: all(i.state.is_terminal for i in sched.states(trials).values()),
        300,
        "the trials to end",
    )
    wait_for(lambda: not processes_mentioning(str(ws)), 60, "every process to exit")
    with _campaign_lock(ws, "a"):
        (ws / "campaigns/a/plan.json").write_text('{"damaged": ')

    done = run_rea(ws, "tick", "--json")
    _no_traceback(done)
    assert done.returncode == 1  # one campaign could not be checked
    report = {c["campaign_id"]: c for c in json.loads(done.stdout)["campaigns"]}
    assert report["c"]["action"] == "error" and "campaign.json" in report["c"]["reason"]
    assert report["a"]["action"] == "paused"
    assert "plan.json was edited after approval" in report["a"]["reason"]
    assert campaign_doc(ws, "a")["state"] == "PAUSED"
    assert report["b"]["action"] == "resumed", report["b"]
    assert campaign_doc(ws, "b")["state"] in ("RUNNING", "AWAITING_REVIEW")
    text = run_rea(ws, "tick")
    _no_traceback(text)
    assert "c [?] error: " in text.stdout and "campaign.json is corrupt" in text.stdout
    _cancel_and_wait(ws, "a", "b")


def test_data_changed_after_approval_pauses_with_the_trainers_message(workspace: Path) -> None:
    ws = workspace
    data = ws.parent / "data"
    data.mkdir()
    rows = [f"u{i % 41},i{i % 67},{(i * 13) % 97}.25,{(i * 7) % 3 % 2}" for i in range(3000)]
    (data / "clicks.csv").write_text("user,item,price,clicked\n" + "\n".join(rows) + "\n")
    (data / "schema.toml").write_text(
        'data = "clicks.csv"\nlabel = "clicked"\ncategorical = ["user", "item"]\n'
        'numerical = ["price"]\n'
    )
    plan = ["plan", "--model", "lr", "--dataset", str(data / "schema.toml"), "--budget", "2gpu-h"]
    done = run_rea(ws, *plan, "--profile", "tiny", "--id", "bd")
    assert done.returncode == 0, done.stderr
    assert run_rea(ws, "approve", "bd", "--yes").returncode == 0
    with open(data / "clicks.csv", "a") as fh:  # someone appends a day of data
        fh.write("\n".join(rows[:500]) + "\n")
    assert run_rea(ws, "launch", "bd").returncode == 0

    wait_for(lambda: campaign_doc(ws, "bd")["state"] != "RUNNING", 300, "the campaign to pause")
    doc = campaign_doc(ws, "bd")
    assert doc["state"] == "PAUSED", doc["state"]
    status = run_rea(ws, "status", "bd", "--json")
    _no_traceback(status)
    summary = json.loads(status.stdout)
    # the trainer's own words: which file changed and how
    paused = summary["pause_reason"]
    assert "clicks.csv" in paused and "->" in paused and "fingerprint" in paused
    reasons = [r for p in summary["phases"].values() for r in p["reasons"]]
    assert reasons and all("clicks.csv" in r for r in reasons)
    text = " ".join(run_rea(ws, "status", "bd").stdout.split())
    assert "paused: trial " in text and "clicks.csv" in text
    _cancel_and_wait(ws, "bd")


def test_a_resume_killed_after_ingesting_is_caught_up_by_tick(tmp_path: Path) -> None:
    from tests.conftest import make_workspace

    ws = make_workspace(tmp_path / "ws")
    markers = tmp_path / "crashed"
    env = {"REA_CRASH_AT": "ingested", "REA_CRASH_ONCE_DIR": str(markers)}
    start_campaign(ws, "k9", env)  # the wake-up inherits it: its resume dies after ingesting
    wait_for(lambda: (markers / "ingested").exists(), 300, "the wake-up to be killed")
    wait_for(lambda: not processes_mentioning(str(ws)), 60, "every process to exit")
    doc = campaign_doc(ws, "k9")
    assert doc["state"] == "RUNNING"
    succeeded = {tid for tid, t in doc["trials"].items() if t["status"] == "succeeded"}
    assert succeeded  # the killed resume saved them...
    copy = dict(_copy(ws, "SELECT trial_id, status FROM trials WHERE campaign_id = 'k9'"))
    assert any(copy.get(tid) != "succeeded" for tid in succeeded)  # ...but never synced them
    digest = folder_digest(ws / "campaigns/k9")[0]
    assert read_watermarks(ws / "insights-analyst.duckdb").get("k9") != digest

    done = run_rea(ws, "tick", "--json")
    assert done.returncode == 0, done.stderr
    with _campaign_lock(ws, "k9"):  # what the copy holds, against the files at this moment
        doc = campaign_doc(ws, "k9")
        copy = dict(_copy(ws, "SELECT trial_id, status FROM trials WHERE campaign_id = 'k9'"))
        marks = read_watermarks(ws / "insights-analyst.duckdb")
        digest = folder_digest(ws / "campaigns/k9")[0]
    if marks.get("k9") == digest:  # nothing moved since the tick's sync
        assert {tid: t["status"] for tid, t in doc["trials"].items()} == copy
    assert all(copy.get(tid) == "succeeded" for tid in succeeded)
    _cancel_and_wait(ws, "k9")
