"""Faults of one attempt and of a launch, on the local backend with real training:

- a result.json with a NaN metric is a failed attempt (`invalid_result`), diagnosed by its
  runbook and never a value in campaign.json, journal.jsonl or DuckDB;
- a trial whose result.json is missing is retried, and once it succeeds it keeps no diagnosis
  (its failed job keeps its own);
- data cut at a line boundary after approval: trials fail with `data_changed`, the campaign
  pauses, and `rea status` and the insights failures name the file (the trainer's message, the
  most specific one);
- a `rea launch` killed before the campaign turned RUNNING is finished by `rea tick` and by
  `rea resume`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from ranking_models.train import write_json_atomic as trainer_write_json
from tests.conftest import (
    campaign_doc,
    make_workspace,
    processes_mentioning,
    run_rea,
    start_campaign,
    wait_for,
)

pytestmark = pytest.mark.slow


def _events(ws: Path, cid: str) -> list[dict[str, Any]]:
    text = (ws / "campaigns" / cid / "journal.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def _query(ws: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(ws / "insights-analyst.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _no_bare_nan(path: Path) -> None:
    text = path.read_text()
    for bad in ("NaN", "Infinity"):
        assert bad not in text, f"{bad} in {path.name}"
    for line in [text] if path.suffix == ".json" else text.splitlines():
        json.loads(line)


def test_nan_metric_is_invalid_and_a_retried_trial_keeps_no_diagnosis(workspace: Path) -> None:
    ws, cid = workspace, "nan"
    # the first wake-up dies as it starts: the test changes the results before any resume
    start_campaign(ws, cid, {"REA_CRASH_AT": "loaded"})
    camp = ws / "campaigns" / cid
    doc = campaign_doc(ws, cid)
    (rnd,) = doc["phases"]["validation"]["rounds"]
    nan_tid, lost_tid = rnd["trial_ids"][:2]

    def ended() -> bool:
        folders = [camp / "trials" / t / "attempts" / "1" for t in (nan_tid, lost_tid)]
        return all((f / "result.json").exists() for f in folders)

    wait_for(ended, 300, "the first round's results")
    wait_for(lambda: not processes_mentioning(str(ws)), 60, "the killed wake-up and the trials")
    result = camp / "trials" / nan_tid / "attempts" / "1" / "result.json"
    doc = json.loads(result.read_text())
    assert doc["status"] == "succeeded"
    doc["valid"]["auc"] = math.nan  # what a corrupt result says
    trainer_write_json(result, doc)
    (camp / "trials" / lost_tid / "attempts" / "1" / "result.json").unlink()

    done = run_rea(ws, "resume", cid)
    assert done.returncode == 0, done.stderr

    doc = campaign_doc(ws, cid)
    bad = doc["trials"][nan_tid]
    (job,) = bad["jobs"]
    assert bad["status"] == "failed" and bad["metric_value"] is None
    assert (job["failure_kind"], job["runbook"], job["action"]) == (
        "invalid_result",
        "invalid-result",
        "give_up",
    )
    assert "valid.auc" in job["reason"]
    _no_bare_nan(camp / "campaign.json")
    _no_bare_nan(camp / "journal.jsonl")
    diagnoses = [e for e in _events(ws, cid) if e["event"] == "diagnosis"]
    (diag,) = [e for e in diagnoses if e["trial_id"] == nan_tid]
    assert diag["runbook"] == "invalid-result" and diag["action"] == "give_up"
    rows = _query(
        ws,
        f"SELECT status, failure_kind FROM attempts WHERE campaign_id = '{cid}' "
        f"AND trial_id = '{nan_tid}'",
    )
    assert rows == [("failed", "invalid_result")]
    assert _query(ws, "SELECT count(*) FROM attempts WHERE status IS NULL") == [(0,)]

    # the trial without a result was retried (a new job); it succeeds and is not diagnosed any
    # more, while its first job keeps the diagnosis of that attempt
    lost = doc["trials"][lost_tid]
    assert lost["jobs"][0]["failure_kind"] == "missing_result"
    assert lost["jobs"][0]["action"] == "retry"

    def retried() -> bool:
        return campaign_doc(ws, cid)["trials"][lost_tid]["status"] != "submitted"

    wait_for(retried, 300, "the retried trial")
    lost = campaign_doc(ws, cid)["trials"][lost_tid]
    assert lost["status"] == "succeeded" and lost["diagnosis"] is None
    assert lost["jobs"][0]["diagnosis"] and lost["jobs"][-1]["diagnosis"] is None
    status = run_rea(ws, "status", cid)
    assert status.returncode == 0, status.stderr
    failures = [x for x in status.stdout.splitlines() if x.strip().startswith("failed: ")]
    assert any(f"/s{bad['seed']}: " in x for x in failures)
    assert not any(f"/s{lost['seed']}: " in x for x in failures), failures
    if campaign_doc(ws, cid)["state"] in ("RUNNING", "PAUSED"):
        run_rea(ws, "cancel", cid)


def _csv(folder: Path, rows: int = 1500) -> Path:
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "user": rng.integers(0, 30, rows),
            "price": rng.lognormal(0.0, 1.0, rows),
            "clicked": rng.integers(0, 2, rows),
        }
    )
    pcsv.write_csv(table, folder / "clicks.csv")
    schema = folder / "schema.toml"
    schema.write_text(
        'data = "clicks.csv"\nlabel = "clicked"\ncategorical = ["user"]\nnumerical = ["price"]\n'
    )
    return schema


def test_data_cut_after_approval_pauses_and_names_the_file(tmp_path: Path) -> None:
    ws, cid = make_workspace(tmp_path / "ws"), "cut"
    schema = _csv(tmp_path)
    plan = run_rea(
        ws, "plan", "--model", "dcn_v2", "--dataset", str(schema), "--budget", "2gpu-h",
        "--profile", "tiny", "--id", cid,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    assert run_rea(ws, "approve", cid, "--yes").returncode == 0
    data = tmp_path / "clicks.csv"
    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines[: len(lines) // 4]))  # cut at a line boundary: still a table

    launch = run_rea(ws, "launch", cid)
    assert launch.returncode == 0, launch.stderr
    wait_for(lambda: campaign_doc(ws, cid)["state"] != "RUNNING", 300, "the campaign to pause")

    doc = campaign_doc(ws, cid)
    assert doc["state"] == "PAUSED"
    assert f"{data}: size" in doc["pause_reason"], doc["pause_reason"]
    failed = [t for t in doc["trials"].values() if t["status"] == "failed"]
    assert failed and all(t["jobs"][-1]["failure_kind"] == "data_changed" for t in failed)
    assert {t["jobs"][-1]["runbook"] for t in failed} == {"data-changed"}
    status = run_rea(ws, "status", cid)
    assert status.returncode == 0
    said = " ".join(status.stdout.split())
    assert "paused: trial" in said and f"{data}: size" in said
    assert "NonZeroExitCode" not in said
    details = _query(ws, f"SELECT detail FROM failures WHERE campaign_id = '{cid}'")
    assert details and all(f"{data}: size" in d for (d,) in details), details


def test_a_launch_killed_before_running_is_finished_by_tick_and_resume(workspace: Path) -> None:
    ws = workspace
    for cid in ("lt", "lr"):
        start_campaign(ws, cid, launch=False)
        killed = run_rea(ws, "launch", cid, env={"REA_CRASH_AT": "launch_intent"})
        assert killed.returncode == -9
        assert campaign_doc(ws, cid)["state"] == "APPROVED"
        assert [e["event"] for e in _events(ws, cid)][-1] == "launch_intent"

    tick = run_rea(ws, "tick", "--json")
    assert tick.returncode == 0, tick.stderr
    entries = {c["campaign_id"]: c for c in json.loads(tick.stdout)["campaigns"]}
    assert set(entries) == {"lt", "lr"}  # the tick finishes every interrupted launch
    assert entries["lt"]["action"] == "resumed" and "launch interrupted" in entries["lt"]["reason"]
    for cid in ("lt", "lr"):
        doc = campaign_doc(ws, cid)
        assert doc["state"] == "RUNNING"
        (rnd,) = doc["phases"]["validation"]["rounds"]
        assert rnd["status"] == "released" and rnd["wakeup_job_id"]

    # the same through `rea resume`, and a second launch attempt is refused: one submission
    start_campaign(ws, "lx", launch=False)
    assert run_rea(ws, "launch", "lx", env={"REA_CRASH_AT": "launch_intent"}).returncode == -9
    resumed = run_rea(ws, "resume", "lx")
    assert resumed.returncode == 0, resumed.stderr
    assert campaign_doc(ws, "lx")["state"] == "RUNNING"
    again = run_rea(ws, "launch", "lx")
    assert again.returncode == 1 and "can be launched only once" in again.stderr
    assert len(campaign_doc(ws, "lx")["phases"]["validation"]["rounds"]) == 1
    for cid in ("lt", "lr", "lx"):
        assert run_rea(ws, "cancel", cid).returncode == 0
