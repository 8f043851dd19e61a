"""A recurring campaign run twice by `rea tick` with a clock the test supplies (--now, REA_NOW):
shared by the local-backend and the Slurm tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import campaign_doc, run_rea, wait_for

RUN1, RUN2 = "weekly-202612010000", "weekly-202612080000"


def _tick(ws: Path, now: str) -> dict[str, Any]:
    done = run_rea(ws, "tick", "--now", now, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert len(report["schedules"]) == 1, report
    return report["schedules"][0]  # type: ignore[no-any-return]


def _runs(ws: Path) -> list[str]:
    state = json.loads((ws / "schedules" / "weekly" / "state.json").read_text())
    return [r["campaign_id"] for r in state["runs"]]


def _approve(ws: Path, period_budget: str) -> None:
    done = run_rea(
        ws,
        "schedule",
        "approve",
        "weekly",
        "--run-budget",
        "4gpu-h",
        "--period-budget",
        period_budget,
        "--valid-until",
        "2099-12-31",
        "--yes",
        "--json",
        env={"REA_NOW": "2026-12-01T00:00:00Z"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["period_gpu_hours"] > 0


def _wait_ended(ws: Path, cid: str, timeout: float) -> dict[str, Any]:
    wait_for(lambda: campaign_doc(ws, cid)["state"] != "RUNNING", timeout, f"run {cid} to end")
    doc = campaign_doc(ws, cid)
    assert doc["state"] == "AWAITING_REVIEW", doc.get("pause_reason")
    return doc


def run_weekly_twice(ws: Path, timeout: float) -> None:
    """add, approve, tick (run 1), tick (nothing more), run 1 ends, tick (run 2, planned from
    run 1's history), run 2 ends, a smaller period budget: the third due run waits (stuck)."""
    added = run_rea(
        ws, "schedule", "add", "weekly", "--model", "dcn_v2", "--dataset", "synthetic",
        "--profile", "tiny", "--every", "7d", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert _tick(ws, "2026-12-01T00:05")["action"] == "waiting"  # not approved yet
    _approve(ws, "8.05gpu-h")

    first = _tick(ws, "2026-12-01T00:05")
    assert (first["action"], first["campaign_id"]) == ("started", RUN1), first
    assert campaign_doc(ws, RUN1)["state"] == "RUNNING"
    again = _tick(ws, "2026-12-01T00:10")  # never a second run of one template at once
    assert again["action"] == "none" and _runs(ws) == [RUN1], again
    doc1 = _wait_ended(ws, RUN1, timeout)
    approval = json.loads((ws / "campaigns" / RUN1 / "approval.json").read_text())
    assert (approval["standing"] or "").startswith("schedule weekly, approved by ")

    assert _tick(ws, "2026-12-04T00:00")["action"] == "none"  # not due before a week
    second = _tick(ws, "2026-12-08T00:05")
    assert (second["action"], second["campaign_id"]) == ("started", RUN2), second
    # the second run plans from the first one's history (insights of the workspace)
    plan = json.loads((ws / "campaigns" / RUN2 / "plan.json").read_text())
    assert plan["history"], "the second run's plan has no history of the first"
    assert any(r["numbers"]["history_n"] > 0 for r in plan["ranking"])
    assert any(h["source"] == "insights_history" for h in plan["hypotheses"].values())
    doc2 = _wait_ended(ws, RUN2, timeout)
    for doc in (doc1, doc2):  # within the standing budget, run by run
        assert doc["budget"]["approved_gpu_hours"] == 4.0
        assert 0 <= doc["budget"]["spent_gpu_hours"] <= 4.0
    assert doc1["budget"]["spent_gpu_hours"] > 0  # (run 2 may reuse every trial of run 1)

    # a period budget between one run and one run + what the two spent: the third due run
    # does not fit and waits, saying why
    used = doc1["budget"]["spent_gpu_hours"] + doc2["budget"]["spent_gpu_hours"]
    _approve(ws, f"{4.0 + used / 2:.6f}gpu-h")
    done = run_rea(ws, "tick", "--now", "2026-12-15T00:05")
    assert done.returncode == 0, done.stderr
    assert "stuck: schedule weekly: a run is due but does not fit the month's budget" in (
        done.stdout
    ), done.stdout
    assert _runs(ws) == [RUN1, RUN2]
    listed = run_rea(ws, "schedule", "list", "--json")
    (row,) = json.loads(listed.stdout)
    assert [r["campaign_id"] for r in row["runs"]] == [RUN1, RUN2]
    assert row["approval_valid"] is True
