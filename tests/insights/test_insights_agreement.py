"""A number with one meaning has one home: the SQL views must give the figures the agent's
Python gives on the same campaign folders (budget spent/reserved, the paired gain)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import duckdb
import pytest
from insights_builder import CampaignBuilder
from scipy.special import stdtrit

from rea_cli import budget
from rea_cli.campaign.model import Campaign
from rea_cli.campaign.state import TrialStatus
from rea_cli.campaign.store import CampaignStore
from rea_cli.insights import hypothesis_effects, sync_campaign
from rea_cli.planner.stats import paired_gain
from rea_cli.workspace import Workspace


def query(db: Path, sql: str) -> list[dict[str, Any]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


# -- budget ---------------------------------------------------------------------------------
# (phase, state, gpu_seconds, gpus, time_limit_min, restarts); one trial each, except that
# consecutive rows with the same trial key are the jobs of one trial (a retry).
Job = tuple[str, str, float, int, float, int]
JOBS: dict[str, list[tuple[str, Job]]] = {
    "c-budget-a": [
        ("v0", ("validation", "COMPLETED", 1800.0, 1, 30, 0)),
        ("v1", ("validation", "TIMEOUT", 7200.0, 2, 60, 0)),
        ("v2", ("validation", "UNKNOWN", 600.0, 1, 45.5, 0)),  # ended: no longer reserved
        ("v3", ("validation", "REQUEUED", 900.0, 1, 30.25, 2)),  # requeued twice, runs again
        ("v4", ("validation", "COMPLETED", 1400.0, 1, 30, 1)),  # both runs counted in seconds
        ("c0", ("combination", "RUNNING", 300.0, 4, 20.5, 0)),
        ("c1", ("combination", "PENDING", 0.0, 1, 30, 0)),
        ("c2", ("combination", "HELD", 0.0, 2, 12.75, 0)),
        ("c3", ("combination", "FAILED", 500.0, 1, 30, 0)),
        ("c3", ("combination", "RUNNING", 120.0, 1, 30, 0)),  # its retry
        ("c4", ("combination", "OUT_OF_MEMORY", 50.0, 1, 30, 0)),
        ("c5", ("combination", "CANCELLED", 10.0, 1, 30, 0)),
    ],
    "c-budget-b": [
        ("v0", ("validation", "NODE_FAIL", 33.3, 8, 7.5, 0)),
        ("v1", ("validation", "PREEMPTED", 66.6, 1, 7.5, 0)),
        ("v2", ("validation", "UNKNOWN", 0.0, 1, 7.5, 0)),
        ("v3", ("validation", "HELD", 0.0, 8, 7.5, 0)),
        ("v4", ("validation", "REQUEUED", 123.4, 8, 7.5, 3)),
    ],
}


def _budget_campaigns(ws: Workspace) -> dict[str, Campaign]:
    """The campaigns of JOBS through the real store, synced; returned as the store reads them."""
    for cid, jobs in JOBS.items():
        b = CampaignBuilder(ws, cid)
        b.phase("validation")
        b.phase("combination")
        b.phase("exploitation", status="pending")  # a phase with no jobs yet
        b.write_plan()
        for i, (key, (phase, state, gpu_s, gpus, limit, restarts)) in enumerate(jobs):
            tid = f"{phase}-baseline-{key}"
            if tid not in b.campaign.trials:
                b.trial(tid, "baseline", i, phase=phase)
            b.job(
                tid,
                f"{cid}-{i}",
                state=state,
                gpu_seconds=gpu_s,
                gpus=gpus,
                time_limit_min=limit,
                restarts=restarts,
            )
        b.write_campaign()
        report = sync_campaign(ws.db_path, b.dir)
        assert not report.warnings
    return {cid: CampaignStore(ws, cid).load() for cid in JOBS}


def test_budget_burn_spent_is_budget_spent_hours(ws: Workspace) -> None:
    campaigns = _budget_campaigns(ws)
    rows = query(
        ws.db_path,
        "SELECT campaign_id, phase, spent_gpu_hours, cumulative_gpu_hours FROM budget_burn "
        "ORDER BY campaign_id, phase_order",
    )
    for cid, c in campaigns.items():
        mine = [r for r in rows if r["campaign_id"] == cid]
        assert [r["phase"] for r in mine] == ["validation", "combination", "exploitation"]
        expected = budget.spent_hours(c)
        assert expected > 0
        assert sum(r["spent_gpu_hours"] for r in mine) == pytest.approx(expected, abs=1e-9)
        assert mine[-1]["cumulative_gpu_hours"] == pytest.approx(expected, abs=1e-9)
        # and the figure the campaign itself recorded (budget.refresh, 6 decimals)
        (recorded,) = query(
            ws.db_path, f"SELECT spent_gpu_hours FROM campaigns WHERE campaign_id = '{cid}'"
        )
        assert recorded["spent_gpu_hours"] == pytest.approx(expected, abs=1e-6)


def test_t_table_is_scipys_quantile_rounded_up() -> None:
    from rea_cli.insights.t_table import T975

    dfs = [df for df, _ in T975]
    assert dfs[:300] == list(range(1, 301)) and dfs == sorted(dfs)
    for df, t in T975:
        exact = float(stdtrit(df, 0.975))
        assert exact <= t <= exact + 1e-9, df


def test_budget_burn_reserved_is_budget_reserved_hours(ws: Workspace) -> None:
    campaigns = _budget_campaigns(ws)
    ended = set(budget.ENDED_STATES)
    assert "UNKNOWN" in ended and ended.isdisjoint({"RUNNING", "PENDING", "HELD", "REQUEUED"})
    expected = {}
    for cid, c in campaigns.items():
        jobs = [j for t in c.trials.values() for j in t.jobs]
        by_list = sum(j.time_limit_min * j.gpus for j in jobs if j.state.value not in ended) / 60
        assert budget.reserved_hours(c) == pytest.approx(by_list, abs=1e-12)
        assert by_list > 0
        expected[cid] = by_list
    # per campaign: summed over its phases
    rows = query(
        ws.db_path,
        "SELECT campaign_id, sum(reserved_gpu_hours) AS reserved FROM budget_burn "
        "GROUP BY campaign_id ORDER BY campaign_id",
    )
    assert [r["campaign_id"] for r in rows] == sorted(expected)
    for r in rows:
        assert r["reserved"] == pytest.approx(expected[r["campaign_id"]], abs=1e-9)


# -- the paired gain ------------------------------------------------------------------------
# Hypothesis hN succeeds at seeds 0..N-1, so it is paired with the baseline on N seeds: n runs
# over 2..11, df = n - 1 over 1..10. Every such df is a row of the view's t table (schema.py
# _T975); a df between two rows is looked up conservatively (the smaller df), which the Python
# interval (exact Student t) does not do, so those n are deliberately not used here.
HYPOTHESES = {f"h{n}": n for n in range(2, 12)}
SEEDS = 12


def _gains_campaign(ws: Workspace, cid: str, metric: str, direction: str) -> CampaignBuilder:
    rng = random.Random(cid)
    b = CampaignBuilder(ws, cid, metric=metric, direction=direction)
    for k, hid in enumerate(HYPOTHESES):
        b.hypothesis(hid, delta={"model.embedding_dim": 8 + 4 * k})
    b.phase("validation")
    b.write_plan()

    def succeed(tid: str, value: float) -> None:
        if metric == "auc":
            b.attempt(tid, auc=value)
        else:
            b.attempt(tid, logloss=value)

    def fail(tid: str, kind: str) -> None:
        b.attempt(tid, auc=None, status="failed", failure_kind=kind, job_state="FAILED")

    centre = 0.78 if metric == "auc" else 0.45
    for seed in range(SEEDS):
        tid = f"validation-baseline-s{seed}"
        b.trial(tid, "baseline", seed)
        if seed == SEEDS - 1:
            fail(tid, "oom")  # nothing pairs at the last seed
        else:
            succeed(tid, centre + rng.uniform(-0.01, 0.01))
    for hid, n in HYPOTHESES.items():
        for seed in range(n):
            tid = f"validation-{hid}-s{seed}"
            b.trial(tid, hid, seed)
            succeed(tid, centre + rng.uniform(-0.01, 0.02))
        if n < SEEDS:  # the hypothesis failed at the next seed: that seed must not be paired
            tid = f"validation-{hid}-s{n}"
            b.trial(tid, hid, n)
            fail(tid, "nan_loss")
    # a success where the baseline failed: not paired either
    tid = f"validation-h4-s{SEEDS - 1}"
    b.trial(tid, "h4", SEEDS - 1)
    succeed(tid, centre)
    b.judge("validation")  # the agent's own reading of every attempt folder
    b.write_campaign()
    report = sync_campaign(ws.db_path, b.dir)
    assert not report.warnings
    return b


def _values(c: Campaign, hid: str) -> dict[int, float]:
    return {
        t.seed: t.metric_value
        for t in c.trials_of("validation").values()
        if t.hypothesis_id == hid
        and t.status is TrialStatus.SUCCEEDED
        and t.metric_value is not None
    }


def _test_values(c: Campaign, hid: str) -> dict[int, float]:
    return {
        t.seed: t.test_value
        for t in c.trials_of("validation").values()
        if t.hypothesis_id == hid and t.status is TrialStatus.SUCCEEDED and t.test_value is not None
    }


@pytest.mark.parametrize(("metric", "direction"), [("auc", "max"), ("logloss", "min")])
def test_hypothesis_effects_is_the_agents_paired_gain(
    ws: Workspace, metric: str, direction: str
) -> None:
    b = _gains_campaign(ws, f"c-gain-{metric}", metric, direction)
    c = b.store.load()
    # what the agent's gates decide on: the paired gain of each hypothesis's succeeded trials
    python = {h: paired_gain(_values(c, "baseline"), _values(c, h), direction) for h in HYPOTHESES}
    rows = hypothesis_effects(ws.db_path)
    assert {(r["metric"], r["direction"]) for r in rows} == {(metric, direction)}
    sql = {r["hypothesis_id"]: r for r in rows}
    assert sorted(sql) == sorted(python) == sorted(HYPOTHESES)
    for hid, n in HYPOTHESES.items():
        pg, row = python[hid], sql[hid]
        assert pg.n == row["n"] == n, hid
        assert pg.mean is not None and pg.ci_low is not None and pg.ci_high is not None
        for a, b_ in (
            (row["mean_gain"], pg.mean),
            (row["baseline_mean"], pg.baseline_mean),
            (row["candidate_mean"], pg.candidate_mean),
        ):
            assert a == pytest.approx(b_, abs=1e-9), hid
        # The view's t table (rea_cli/insights/t_table.py) holds scipy's quantile rounded up
        # at 9 decimals for every df <= 300: the intervals agree to that rounding.
        assert row["sd_gain"] == pytest.approx(pg.sd, rel=1e-9), hid
        assert row["ci_low"] == pytest.approx(pg.ci_low, abs=1e-8), hid
        assert row["ci_high"] == pytest.approx(pg.ci_high, abs=1e-8), hid
        assert row["ci_low"] <= pg.ci_low + 1e-12 and row["ci_high"] >= pg.ci_high - 1e-12
        tg = paired_gain(_test_values(c, "baseline"), _test_values(c, hid), direction)
        assert row["mean_test_gain"] == pytest.approx(tg.mean, abs=1e-9), hid
