"""The analyst views on known data: hypothesis_effects, failure_stats, budget_burn, and the
planner's read helper."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb
import pytest
from insights_builder import CampaignBuilder, paired_campaign

from rea_cli.errors import UsageError
from rea_cli.insights import hypothesis_effects, publish, sync_campaign
from rea_cli.workspace import Workspace


def query(db: Path, sql: str) -> list[dict[str, Any]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows: list[dict[str, Any]] = con.sql(sql).to_arrow_table().to_pylist()
        return rows
    finally:
        con.close()


def test_effects_mean_ci_n_match_a_paired_t_interval(ws: Workspace) -> None:
    gains = (0.004, 0.006, 0.005)
    b = paired_campaign(ws.root, gains={"emb32": gains, "lr3": (-0.002, -0.001, -0.003)})
    sync_campaign(ws.db_path, b.dir)
    rows = hypothesis_effects(ws.db_path)
    assert [r["hypothesis_id"] for r in rows] == ["emb32", "lr3"]  # best first
    emb = rows[0]
    mean = sum(gains) / 3
    sd = math.sqrt(sum((g - mean) ** 2 for g in gains) / 2)
    half = 4.302652730 * sd / math.sqrt(3)  # t(0.975, df=2), rounded up at 9 decimals
    assert emb["n"] == 3 and emb["n_campaigns"] == 1 and emb["source"] == "research_kb"
    assert emb["mean_gain"] == pytest.approx(mean)
    assert emb["ci_low"] == pytest.approx(mean - half)
    assert emb["ci_high"] == pytest.approx(mean + half)
    assert emb["baseline_mean"] == pytest.approx((0.780 + 0.782 + 0.779) / 3)
    assert emb["mean_test_gain"] == pytest.approx(mean)
    assert rows[1]["mean_gain"] == pytest.approx(-0.002)


def test_effects_pool_campaigns_and_filter(ws: Workspace) -> None:
    a = paired_campaign(ws.root, "c-a", gains={"emb32": (0.01, 0.01, 0.01)})
    b = paired_campaign(ws.root, "c-b", gains={"emb32": (0.02, 0.02, 0.02)})
    c = paired_campaign(ws.root, "c-c", gains={"emb32": (0.05,) * 3}, model_family="deepfm")
    for x in (a, b, c):
        sync_campaign(ws.db_path, x.dir, analyst_path=ws.analyst_db_path)
    pooled = hypothesis_effects(ws.analyst_db_path, model_family="dcn_v2", hypothesis="emb32")
    assert len(pooled) == 1
    assert pooled[0]["n"] == 6 and pooled[0]["n_campaigns"] == 2
    assert pooled[0]["mean_gain"] == pytest.approx(0.015)
    assert [r["model_family"] for r in hypothesis_effects(ws.analyst_db_path)] == [
        "dcn_v2",
        "deepfm",
    ]
    assert hypothesis_effects(ws.analyst_db_path, dataset="criteo") == []


def test_effects_pair_on_seed_and_fidelity_and_respect_direction(ws: Workspace) -> None:
    b = CampaignBuilder(ws.root, metric="auc", direction="min")  # pretend lower is better
    b.hypothesis("baseline", source="baseline", delta={})
    b.hypothesis("h")
    full = {"train.data_fraction": 1.0}
    for tid, hid, seed, fidelity, auc in (
        ("b0", "baseline", 0, None, 0.70),
        ("b0-full", "baseline", 0, full, 0.90),
        ("h0", "h", 0, None, 0.68),  # pairs with b0: gain +0.02 (lower is better)
        ("h1", "h", 1, None, 0.50),  # no baseline with seed 1: not paired
    ):
        b.trial(tid, hid, seed, fidelity=fidelity)
        b.attempt(tid, auc=auc)
    b.write_campaign()
    sync_campaign(ws.db_path, b.dir)
    (row,) = hypothesis_effects(ws.db_path)
    assert row["n"] == 1 and row["mean_gain"] == pytest.approx(0.02)
    assert row["ci_low"] is None  # one pair: no interval


def test_effects_use_the_last_succeeded_attempt(ws: Workspace) -> None:
    b = paired_campaign(ws.root, gains={"h": (0.01,)}, base=(0.78,))
    b.attempt("validation-h-s0", 2, auc=None, status="failed", failure_kind="oom")
    b.write_campaign()
    sync_campaign(ws.db_path, b.dir)
    assert hypothesis_effects(ws.db_path)[0]["mean_gain"] == pytest.approx(0.01)
    b.attempt("validation-h-s0", 3, auc=0.80)
    b.write_campaign()
    sync_campaign(ws.db_path, b.dir)
    assert hypothesis_effects(ws.db_path)[0]["mean_gain"] == pytest.approx(0.02)


def test_failure_stats(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    b.trial("t-nan", "emb32", 5)
    b.attempt("t-nan", 1, auc=None, status="failed", failure_kind="nan_loss", job_state="FAILED")
    b.event("diagnosis", trial_id="t-nan", attempt=1, diagnosis="diverged", action="retry_lower_lr")
    b.attempt("t-nan", 2, auc=None, status=None, job_state="TIMEOUT", job_id="900_1")
    b.attempt("t-nan", 3, auc=None, status=None, job_state="RUNNING", job_id="901_1")
    b.write_campaign()
    sync_campaign(ws.db_path, b.dir)
    rows = query(ws.db_path, "SELECT * FROM failure_stats ORDER BY failure_kind")
    assert [(r["failure_kind"], r["diagnosis"], r["action"], r["n_attempts"]) for r in rows] == [
        ("nan_loss", "diverged", "retry_lower_lr", 1),
        ("timeout", "undiagnosed", "none", 1),
    ]
    summary = query(ws.db_path, "SELECT n_attempts, n_attempts_failed FROM campaign_summary")
    assert summary == [{"n_attempts": 9, "n_attempts_failed": 2}]


def test_budget_burn(ws: Workspace) -> None:
    b = paired_campaign(ws.root)  # 6 jobs x 12 GPU-seconds, 30 min limit, 1 GPU
    b.phase("combination")
    b.trial("comb-0", "emb32", 0, phase="combination")
    b.attempt("comb-0", gpu_seconds=3600.0)
    b.write_campaign()
    sync_campaign(ws.db_path, b.dir)
    rows = query(ws.db_path, "SELECT * FROM budget_burn ORDER BY phase_order")
    # the plan's three phases, whether they ran or not
    assert [r["phase"] for r in rows] == ["validation", "combination", "exploitation"]
    val, comb, _ = rows
    assert val["n_jobs"] == 6 and val["spent_gpu_hours"] == pytest.approx(72 / 3600)
    planned = b.plan.phase("validation").estimated_gpu_hours
    assert val["limit_gpu_hours"] == pytest.approx(3.0)
    assert val["estimated_gpu_hours"] == pytest.approx(planned)
    assert comb["cumulative_gpu_hours"] == pytest.approx(1 + 72 / 3600)
    assert comb["fraction_of_budget"] == pytest.approx((1 + 72 / 3600) / 4.0)


def test_publish_alone(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    sync_campaign(ws.db_path, b.dir)
    assert not ws.analyst_db_path.exists()
    seconds = publish(ws.db_path, ws.analyst_db_path)
    assert seconds >= 0 and len(hypothesis_effects(ws.analyst_db_path)) == 1
    # a temp copy left by a publisher killed mid-copy is cleaned up by the next one
    stale = ws.root / ".insights-analyst.duckdb.12345.tmp"
    stale.write_bytes(b"partial")
    publish(ws.db_path, ws.analyst_db_path)
    assert not stale.exists()


def test_effects_on_missing_db_is_a_usage_error(ws: Workspace) -> None:
    with pytest.raises(UsageError, match="no insights DB"):
        hypothesis_effects(ws.analyst_db_path)
