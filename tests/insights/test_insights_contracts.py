"""The insights reader goes through the writers' file contracts: a result with non-finite
metrics or off its contract is a failed attempt ("invalid_result", as the agent judges it), and
a campaign.json off its model is skipped until it is fixed."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import duckdb
import pytest
from insights_builder import CampaignBuilder, paired_campaign

from ranking_models.train import write_json_atomic as trainer_write_json
from rea_cli.fsutil import write_json_atomic
from rea_cli.insights import hypothesis_effects, sync_campaign
from rea_cli.workspace import Workspace

TID = "validation-emb32-s0"
FRESH = "validation-emb32-s3"  # a trial of emb32 at a seed the baseline also runs
METRIC_COLUMNS = ("auc", "logloss", "ne", "ne_eval", "calibration")


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


def _no_non_finite(rows: list[dict[str, Any]]) -> bool:
    return all(
        not (isinstance(v, float) and not math.isfinite(v)) for row in rows for v in row.values()
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_result_is_a_failed_attempt_and_never_a_value(ws: Workspace, bad: float) -> None:
    b = paired_campaign(ws.root)
    # a retry of a succeeded trial whose result reports a non-finite AUC: the last succeeded
    # attempt stays attempt 1
    b.attempt(TID, 2, auc=bad)
    # a fresh trial whose only attempt reports one: it must not be paired at all
    _fresh_pair(b)
    b.attempt(FRESH, auc=bad)
    b.write_campaign()

    report = sync_campaign(ws.db_path, b.dir)
    assert not report.warnings
    failed = query(
        ws.db_path,
        "SELECT trial_id, attempt, status, failure_kind, failure_message FROM attempts "
        "WHERE status <> 'succeeded' ORDER BY trial_id, attempt",
    )
    assert [(r["trial_id"], r["attempt"], r["status"], r["failure_kind"]) for r in failed] == [
        (TID, 2, "failed", "invalid_result"),
        (FRESH, 1, "failed", "invalid_result"),
    ]
    assert all("valid.auc" in r["failure_message"] for r in failed)
    # the final values of those attempts are not rows; no final row anywhere is non-finite
    finals = query(
        ws.db_path,
        "SELECT * FROM metrics WHERE line = 0 AND split IN ('valid', 'test')",
    )
    assert _no_non_finite(finals)
    assert {(r["trial_id"], r["attempt"]) for r in finals}.isdisjoint({(TID, 2), (FRESH, 1)})
    results = query(ws.db_path, "SELECT * FROM trial_results")
    assert _no_non_finite(results) and len(results) == 7
    assert {r["trial_id"]: r["attempt"] for r in results}[TID] == 1
    assert FRESH not in {r["trial_id"] for r in results}
    effects = hypothesis_effects(ws.db_path)
    assert _no_non_finite(effects)
    assert [(r["hypothesis_id"], r["n"]) for r in effects] == [("emb32", 3)]
    assert effects[0]["mean_gain"] == pytest.approx(0.005)

    # the agent, reading the same folder, judges the fresh trial's attempt the same way
    b.judge("validation")
    judged = b.campaign.trials[FRESH]
    assert judged.status.value == "failed" and judged.jobs[-1].failure_kind == "invalid_result"


def _fresh_pair(b: CampaignBuilder) -> None:
    """Seed 3: a baseline trial that succeeded, and FRESH, submitted with no attempt yet."""
    b.trial("validation-baseline-s3", "baseline", 3)
    b.attempt("validation-baseline-s3", auc=0.781)
    b.trial(FRESH, "emb32", 3)


def _off_contract_result(b: CampaignBuilder, change: dict[str, Any]) -> Path:
    """FRESH's result.json written by the trainer, then changed into a shape it never writes."""
    _fresh_pair(b)
    folder = b.attempt(FRESH, job_id="93_0")
    doc = json.loads((folder / "result.json").read_text())
    doc.update(change)
    trainer_write_json(folder / "result.json", doc)
    return folder


@pytest.mark.parametrize(
    ("change", "field"),
    [({"status": "weird"}, "status"), ({"valid": {"auc": "high"}}, "valid.auc")],
    ids=["status", "metric"],
)
def test_result_off_its_contract_is_a_failed_attempt(
    ws: Workspace, change: dict[str, Any], field: str
) -> None:
    b = paired_campaign(ws.root)
    _off_contract_result(b, change)
    b.write_campaign()
    sync_campaign(ws.db_path, b.dir)
    (row,) = query(
        ws.db_path,
        "SELECT status, failure_kind, failure_message FROM attempts WHERE trial_id = ?",
        [FRESH],
    )
    assert row["status"] == "failed" and row["failure_kind"] == "invalid_result"
    assert f"does not match its contract: {field}" in row["failure_message"]
    assert query(ws.db_path, "SELECT count(*) AS n FROM attempts WHERE status IS NULL") == [
        {"n": 0}
    ]
    assert hypothesis_effects(ws.db_path)[0]["n"] == 3  # FRESH is not paired
    # the agent judges the same file the same way
    b.judge("validation")
    assert b.campaign.trials[FRESH].jobs[-1].failure_kind == "invalid_result"


def test_result_off_its_contract_keeps_what_attempt_json_says(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    _off_contract_result(b, {"status": "weird"})
    b.write_campaign()
    sync_campaign(ws.db_path, b.dir)
    (row,) = query(
        ws.db_path, "SELECT job_id, host, job_state FROM attempts WHERE trial_id = ?", [FRESH]
    )
    assert row == {"job_id": "93_0", "host": "node1", "job_state": "COMPLETED"}


def test_campaign_json_off_its_model_is_skipped_then_picked_up(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    good = b.campaign.dump()
    broken = {**good, "state": "HALF_DONE"}  # a state no writer produces
    write_json_atomic(b.store.campaign_path, broken)

    report = sync_campaign(ws.db_path, b.dir)
    assert any(
        "campaign.json does not match its model (state:" in w and "skipped" in w
        for w in report.warnings
    )
    counts = query(
        ws.db_path,
        "SELECT (SELECT count(*) FROM campaigns) AS campaigns, "
        "(SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM attempts) AS attempts",
    )
    assert counts == [{"campaigns": 0, "jobs": 0, "attempts": 6}]  # the trial folders still

    report = sync_campaign(ws.db_path, b.dir)  # unchanged: not read (nor warned) again
    assert report.files_read == 0

    b.write_campaign()  # fixed by its writer
    report = sync_campaign(ws.db_path, b.dir)
    assert not report.warnings
    row = query(ws.db_path, "SELECT state, phase FROM campaigns")
    assert row == [{"state": "RUNNING", "phase": "validation"}]
    assert query(ws.db_path, "SELECT count(*) AS n FROM jobs") == [{"n": 6}]
