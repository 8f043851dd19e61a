"""The resume step killed (SIGKILL) at each of its steps in turn, then resumed: the campaign
reaches the same end state as an uninterrupted one, with no duplicate trials and no lost results.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import pytest

from rea_cli.executor.local import procs
from rea_cli.executor.local.store import JobStore
from rea_cli.executor.scheduler import JobState
from tests.conftest import (
    campaign_doc,
    make_workspace,
    processes_mentioning,
    run_rea,
    start_campaign,
    wait_for,
)

pytestmark = pytest.mark.slow

# every named step of launch/resume, in the order a campaign meets them
CRASH_POINTS = [
    "round_recorded",  # intent saved, nothing submitted
    "submit_array",  # about to submit the held array
    "array_submitted",  # array submitted (held), ids not yet saved
    "wakeup_submitted",  # wake-up submitted, id not yet saved
    "released",  # tasks released, not yet recorded
    "loaded",  # resume: campaign loaded under the lock
    "reconciled",  # job states refreshed and saved
    "ingested",  # results read, saved, not yet in DuckDB
    "diagnosis_journaled",  # a diagnosis journaled, the campaign not yet saved
    "diagnosed",  # failures diagnosed and saved
    "decided",  # gate recorded, next phase not yet submitted
    "search_asked",  # search points asked (in the study), not yet recorded in the campaign
    "published",  # analyst copy published, process about to exit
]


def _quiet(ws: Path) -> bool:
    return not processes_mentioning(str(ws))


def _busy(ws: Path) -> bool:
    """A launch/resume or a trial of this workspace is running (held arrays and waiting
    wake-ups do not count: they wait for a step that may have been killed)."""
    if any("rea_cli --workspace" in cmd for _, cmd in processes_mentioning(str(ws))):
        return True
    # Trials are forked from their runner, so no command line names them: ask the job records.
    store = JobStore(ws / ".rea" / "local")
    running = [r for r in map(store.read, store.all_job_ids()) if r and r.state is JobState.RUNNING]
    return any(procs.is_alive(r.task) for r in running)


def _drive(ws: Path, cid: str, env: dict[str, str]) -> None:
    """Like the watchdog: whenever no step and no trial runs and the campaign is not finished,
    resume it (the resume may itself be killed at the next crash point)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if campaign_doc(ws, cid)["state"] != "RUNNING":
            return
        if not _busy(ws):
            time.sleep(0.5)  # let a wake-up that is just firing start its resume
            if not _busy(ws) and campaign_doc(ws, cid)["state"] == "RUNNING":
                run_rea(ws, "resume", cid, env=env)
        time.sleep(0.3)
    raise AssertionError("campaign did not finish")


def _outcome(ws: Path, cid: str) -> dict:
    doc = campaign_doc(ws, cid)
    return {
        "state": doc["state"],
        "trials": {
            tid: (t["status"], t["metric_value"] and round(t["metric_value"], 6), len(t["jobs"]))
            for tid, t in doc["trials"].items()
        },
        "proposal": doc["proposal"]["hypothesis_id"],
        "gain": round(doc["proposal"]["gain"] or 0.0, 6),
    }


# one trial fails on purpose, so the diagnosis step has work to do (and to journal once)
DIVERGING = """
[[hypothesis]]
id = "lr_absurd"
title = "Absurd learning rate"
delta = { "train.lr_dense" = 1e6, "train.lr_sparse" = 1e6 }
prior = 1.0
"""


def _workspace(root: Path) -> Path:
    ws = make_workspace(root)
    (ws / "hypotheses.toml").write_text(DIVERGING)
    return ws


def _events(ws: Path, name: str) -> list[dict]:
    lines = (ws / "campaigns" / "c" / "journal.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == name]


def test_crash_at_every_step_reaches_the_same_end_state(tmp_path: Path) -> None:
    ref_ws = _workspace(tmp_path / "reference")
    start_campaign(ref_ws, "c")
    wait_for(lambda: campaign_doc(ref_ws, "c")["state"] != "RUNNING", 400, "reference campaign")
    reference = _outcome(ref_ws, "c")
    assert reference["state"] == "AWAITING_REVIEW"

    ws = _workspace(tmp_path / "crashy")
    markers = tmp_path / "crashed"
    env = {"REA_CRASH_AT": ",".join(CRASH_POINTS), "REA_CRASH_ONCE_DIR": str(markers)}
    start_campaign(ws, "c", extra_env=env)
    _drive(ws, "c", env)
    assert sorted(p.name for p in markers.iterdir()) == sorted(CRASH_POINTS)

    got = _outcome(ws, "c")
    assert got == reference  # same trials, same results, one job per trial: nothing run twice
    wait_for(lambda: _quiet(ws), 30, "processes to exit")

    # no duplicate or lost rows in the insights DB
    run_rea(ws, "resume", "c")
    con = duckdb.connect(str(ws / "insights-analyst.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT trial_id, count(*) FROM trials WHERE campaign_id='c' GROUP BY 1"
        ).fetchall()
    finally:
        con.close()
    assert {tid for tid, _ in rows} == set(reference["trials"])
    assert all(n == 1 for _, n in rows)
    for name in ("phase_submitted", "diagnosis"):
        assert len(_events(ws, name)) == len(_events(ref_ws, name)), name
    # the planted failure diverges on both validation seeds: each journaled once
    assert len(_events(ref_ws, "diagnosis")) == 2
    # the search study outlived the kill between ask and record: the same points were asked
    # (same search hypotheses with the same changes), and none is left asked but never run
    assert _search_points(ws) == _search_points(ref_ws) != {}
    assert _orphans(ws) == []


def _search_points(ws: Path) -> dict[str, dict]:
    doc = campaign_doc(ws, "c")
    return {h: v["delta"] for h, v in doc["hypotheses"].items() if v["source"] == "search"}


def _orphans(ws: Path) -> list[int]:
    """Study trials still RUNNING that no hypothesis of the campaign records."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    folder = ws / "campaigns" / "c" / "search"
    storage = JournalStorage(JournalFileBackend(str(folder / "study.log")))
    doc = campaign_doc(ws, "c")
    recorded = {
        (f"c-{h['study']}", h["number"])
        for h in doc["hypotheses"].values()
        if h["source"] == "search"
    }
    orphans = []
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for t in study.get_trials(deepcopy=False):
            running = t.state is optuna.trial.TrialState.RUNNING
            if running and (summary.study_name, t.number) not in recorded:
                orphans.append(t.number)
    return orphans
