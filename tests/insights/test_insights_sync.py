"""sync_campaign on real campaign folders and real DuckDB files: counts, idempotence,
incremental reads, half-written files, pruning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from insights_builder import CampaignBuilder, paired_campaign

from rea_cli.campaign.model import Proposal, Review
from rea_cli.campaign.store import CampaignStore
from rea_cli.errors import UsageError
from rea_cli.executor.scheduler import JobState
from rea_cli.insights import sync_campaign
from rea_cli.insights.files import Rows
from rea_cli.workspace import Workspace

TABLES = (
    "campaigns",
    "hypotheses",
    "trials",
    "attempts",
    "metrics",
    "events",
    "jobs",
    "phases",
    "plans",
    "approvals",
    "failures",
    "proposals",
    "reviews",
)


def counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES}
    finally:
        con.close()


def query(db: Path, sql: str) -> list[dict[str, Any]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows: list[dict[str, Any]] = con.sql(sql).to_arrow_table().to_pylist()
        return rows
    finally:
        con.close()


def test_first_sync_indexes_every_file(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    report = sync_campaign(ws.db_path, b.dir)
    assert report.changed and not report.warnings and not report.published
    assert counts(ws.db_path) == {
        "campaigns": 1,
        "hypotheses": 2,
        "trials": 6,
        "attempts": 6,
        "metrics": 6 * (2 + 2 + 2),  # 2 train lines + valid and test eval lines + final ones
        "events": 2 + 3,
        "jobs": 6,
        "phases": 3,  # the plan's three phases
        "plans": 1,
        "approvals": 1,
        "failures": 0,
        "proposals": 0,
        "reviews": 0,
    }
    trial = query(ws.db_path, "SELECT * FROM trials WHERE trial_id = 'validation-emb32-s1'")[0]
    assert trial["hypothesis_id"] == "emb32" and trial["seed"] == 1
    assert trial["status"] == "succeeded" and trial["data_name"] == "movielens-100k"
    assert trial["metric_value"] == pytest.approx(0.782 + 0.006)  # the agent's judgement
    assert json.loads(trial["config"])["model"]["family"] == "dcn_v2"
    assert trial["fidelity_key"] == '{"train.data_fraction":0.5}'
    attempt = query(ws.db_path, "SELECT * FROM attempts WHERE trial_id = 'validation-emb32-s1'")[0]
    assert attempt["job_state"] == "COMPLETED" and attempt["gpu_seconds"] == 12.0
    assert attempt["node"] == "node1" and attempt["exit_code"] == 0
    final = query(
        ws.db_path,
        "SELECT split, auc FROM metrics WHERE trial_id = 'validation-emb32-s1' AND line = 0 "
        "ORDER BY split",
    )
    assert [r["split"] for r in final] == ["test", "valid"]
    assert final[1]["auc"] == pytest.approx(0.782 + 0.006)
    approval = query(ws.db_path, "SELECT * FROM approvals")[0]
    assert approval["approved_by"] == "alice" and approval["approved_gpu_hours"] == 4.0
    plan = query(ws.db_path, "SELECT * FROM plans")[0]
    assert plan["n_trials"] == sum(p.max_trials for p in b.plan.phases)
    assert plan["estimated_gpu_hours"] == pytest.approx(b.plan.estimated_gpu_hours)
    assert plan["plan_hash"].startswith("sha256:")


def test_second_sync_changes_nothing(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    sync_campaign(ws.db_path, b.dir, analyst_path=ws.analyst_db_path)
    before = counts(ws.db_path)
    report = sync_campaign(ws.db_path, b.dir, analyst_path=ws.analyst_db_path)
    assert not report.changed and report.files_read == 0 and not report.published
    assert counts(ws.db_path) == before


def test_resync_without_file_index_has_no_duplicates(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    sync_campaign(ws.db_path, b.dir)
    before = counts(ws.db_path)
    con = duckdb.connect(str(ws.db_path))
    con.execute("DELETE FROM ingested_files")
    con.close()
    report = sync_campaign(ws.db_path, b.dir)
    assert report.files_read > 0
    assert counts(ws.db_path) == before


def test_incremental_sync_reads_only_what_changed(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    sync_campaign(ws.db_path, b.dir)
    tid = "validation-emb32-s0"
    b.metric_line(tid, 1, {"event": "train", "epoch": 1, "step": 200, "loss": 0.4})
    b.trial("combination-emb32-s0", "emb32", 0, phase="combination")
    b.attempt("combination-emb32-s0", status=None, job_state="RUNNING", auc=None)
    b.event("phase_submitted", phase="combination")
    b.write_campaign()

    report = sync_campaign(ws.db_path, b.dir)

    # campaign.json, journal, the new spec/attempt.json/metrics and the grown metrics file
    assert report.files_read == 6
    c = counts(ws.db_path)
    assert c["metrics"] == 36 + 1 + 2 and c["trials"] == 7 and c["attempts"] == 7
    assert c["events"] == 6
    lines = query(
        ws.db_path,
        f"SELECT line, loss FROM metrics WHERE trial_id = '{tid}' "
        "AND event = 'train' ORDER BY line",
    )
    assert [r["line"] for r in lines] == [1, 2, 5] and lines[-1]["loss"] == 0.4
    running = query(
        ws.db_path, "SELECT status, job_state FROM attempts WHERE trial_id = 'combination-emb32-s0'"
    )
    # no result.json yet: 'running' while its job runs, never NULL
    assert running == [{"status": "running", "job_state": "RUNNING"}]


def test_half_written_metrics_line_waits_for_next_sync(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    metrics = b.dir / "trials" / "validation-emb32-s0" / "attempts" / "1" / "metrics.jsonl"
    with open(metrics, "a") as fh:
        fh.write('{"event": "train", "epoch": 1, "st')
    report = sync_campaign(ws.db_path, b.dir)
    assert any("last line incomplete" in w for w in report.warnings)
    assert counts(ws.db_path)["metrics"] == 36

    with open(metrics, "a") as fh:
        fh.write('ep": 300, "loss": 0.3}\n')
    report = sync_campaign(ws.db_path, b.dir)
    assert not report.warnings
    rows = query(ws.db_path, "SELECT line, step, loss FROM metrics WHERE line = 5")
    assert rows == [{"line": 5, "step": 300, "loss": 0.3}]


def test_corrupt_result_is_skipped_then_picked_up(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    result = b.dir / "trials" / "validation-emb32-s0" / "attempts" / "1" / "result.json"
    good = result.read_text()
    result.write_text(good[: len(good) // 2])
    report = sync_campaign(ws.db_path, b.dir)
    assert any("result.json not readable yet" in w for w in report.warnings)
    status = "SELECT status FROM attempts WHERE trial_id = 'validation-emb32-s0'"
    # its job completed and left no readable result: a failed attempt until the file is whole
    kind = "SELECT failure_kind FROM attempts WHERE trial_id = 'validation-emb32-s0'"
    assert query(ws.db_path, status) == [{"status": "failed"}]
    assert query(ws.db_path, kind) == [{"failure_kind": "missing_result"}]

    report = sync_campaign(ws.db_path, b.dir)  # still broken: warned again, nothing lost
    assert report.warnings
    result.write_text(good)
    report = sync_campaign(ws.db_path, b.dir)
    assert not report.warnings
    assert query(ws.db_path, status) == [{"status": "succeeded"}]


def test_missing_campaign_json_still_indexes_trials(ws: Workspace) -> None:
    b = CampaignBuilder(ws.root)
    b.trial("t1", "baseline", 0)
    b.attempt("t1")
    report = sync_campaign(ws.db_path, b.dir)
    assert any("campaign.json missing" in w for w in report.warnings)
    assert counts(ws.db_path)["attempts"] == 1
    b.hypothesis("baseline", source="baseline", delta={})
    b.write_campaign()
    report = sync_campaign(ws.db_path, b.dir)
    assert not report.warnings and counts(ws.db_path)["campaigns"] == 1


def test_torn_journal_line_is_skipped(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    with open(b.dir / "journal.jsonl", "a") as fh:
        fh.write('{"seq": 6, "at": "2026-11-2')  # crash mid-append
    report = sync_campaign(ws.db_path, b.dir)
    assert any("last line incomplete" in w for w in report.warnings)
    # the store ends the torn line before it appends, and numbers on from the last whole event
    b.event(
        "diagnosis",
        trial_id="validation-emb32-s0",
        attempt=1,
        job_id="7",
        diagnosis="nan_loss",
        action="retry_lower_lr",
        detail="lr halved",
    )
    report = sync_campaign(ws.db_path, b.dir)
    assert any("line 6 is not JSON" in w for w in report.warnings)
    assert counts(ws.db_path)["events"] == 6
    assert query(ws.db_path, "SELECT seq, diagnosis, action FROM failures") == [
        {"seq": 6, "diagnosis": "nan_loss", "action": "retry_lower_lr"}
    ]


def test_rows_removed_from_campaign_json_are_pruned(ws: Workspace) -> None:
    b = paired_campaign(ws.root, gains={"emb32": (0.01,) * 3, "lr3": (0.0,) * 3})
    sync_campaign(ws.db_path, b.dir)
    assert counts(ws.db_path)["hypotheses"] == 3
    del b.campaign.hypotheses["lr3"]
    b.campaign.proposal = Proposal(
        hypothesis_id="emb32",
        delta={"model.embedding_dim": 32},
        metric="auc",
        direction="max",
        baseline_mean=0.78,
        candidate_mean=0.79,
        gain=0.01,
        ci_low=0.005,
        ci_high=0.015,
        n=3,
        created_at="2026-11-22T11:00:00+00:00",
    )
    b.campaign.review = Review(
        decision="accepted", by="carol", at="2026-11-23T09:00:00+00:00", note="ship it"
    )
    b.write_campaign()
    sync_campaign(ws.db_path, b.dir)
    c = counts(ws.db_path)
    assert c["hypotheses"] == 2 and c["proposals"] == 1 and c["reviews"] == 1
    summary = query(ws.db_path, "SELECT * FROM campaign_summary")[0]
    assert summary["proposal_hypothesis_id"] == "emb32" and summary["review_decision"] == "accepted"
    b.campaign.proposal = None
    b.write_campaign()
    sync_campaign(ws.db_path, b.dir)
    assert counts(ws.db_path)["proposals"] == 0


def test_rows_dedupe_last_wins() -> None:
    rows = Rows("events", ("campaign_id", "seq"), ("campaign_id", "seq", "event"))
    rows.add({"campaign_id": "c", "seq": 1, "event": "planned"})
    rows.add({"campaign_id": "c", "seq": 1, "event": "approved"})
    assert list(rows.by_key.values()) == [("c", 1, "approved")]


def test_not_a_campaign_folder(ws: Workspace) -> None:
    with pytest.raises(UsageError, match="no campaign folder"):
        sync_campaign(ws.db_path, ws.root / "campaigns" / "nope")


def test_duplicate_job_records_in_campaign_json(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    tid = "validation-emb32-s0"
    jobs = b.campaign.trials[tid].jobs
    jobs.append(jobs[0].model_copy(update={"state": JobState.FAILED}))
    b.write_campaign()
    sync_campaign(ws.db_path, b.dir)
    states = query(ws.db_path, f"SELECT state FROM jobs WHERE trial_id = '{tid}'")
    assert states == [{"state": "FAILED"}]


def test_campaign_id_mismatch_is_reported(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    # a campaign folder copied under another name: the store of that folder saves it
    CampaignStore(ws, b.campaign_id).save(b.campaign.model_copy(update={"campaign_id": "other"}))
    report = sync_campaign(ws.db_path, b.dir)
    assert any("indexed as" in w for w in report.warnings)
    assert query(ws.db_path, "SELECT campaign_id FROM campaigns") == [
        {"campaign_id": b.campaign_id}
    ]


def test_merge_sources_one_row_per_key_later_source_wins() -> None:
    from rea_cli.insights.files import merge_sources

    start = Rows("attempts", ("k",), ("k", "job_id", "host"))
    result = Rows("attempts", ("k",), ("k", "job_id", "status"))
    start.add({"k": 1, "job_id": "7", "host": "n1"})
    start.add({"k": 2, "job_id": "8", "host": "n2"})
    result.add({"k": 1, "job_id": "7b", "status": "succeeded"})
    result.add({"k": 3, "job_id": "9", "status": "failed"})
    out = {(r.columns, tuple(r.by_key.items())) for r in merge_sources([start, result])}
    assert out == {
        (("k", "job_id", "host"), (((2,), (2, "8", "n2")),)),
        (("k", "job_id", "status"), (((3,), (3, "9", "failed")),)),
        (("k", "job_id", "host", "status"), (((1,), (1, "7b", "n1", "succeeded")),)),
    }
    assert len(start.by_key) == 2  # inputs untouched


def test_damaged_db_file_is_a_rea_error_not_a_crash(ws: Workspace) -> None:
    from rea_cli.errors import ReaError

    b = paired_campaign(ws.root)
    ws.db_path.write_bytes(b"this is not a duckdb file" * 1000)
    with pytest.raises(ReaError, match="insights DB"):
        sync_campaign(ws.db_path, b.dir)
