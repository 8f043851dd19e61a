"""Several processes at once, on real files: analyst readers, a reader holding the writable DB,
and an agent killed with SIGKILL in the middle of a sync."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from insights_builder import CampaignBuilder, paired_campaign

from rea_cli.insights import InsightsLocked, sync_campaign
from rea_cli.insights.db import BASE_DELAY_S
from rea_cli.workspace import Workspace

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}"}


def _count(db: Path, table: str) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
    finally:
        con.close()


def _grow(b: CampaignBuilder, step: int, n_trials: int) -> None:
    """One campaign step: new trials with results, a journal event, campaign.json rewritten."""
    for k in range(n_trials):
        tid = f"combination-s{step}-{k}"
        b.trial(tid, "emb32", k % 3, phase="combination")
        b.attempt(tid, auc=0.78 + 0.001 * k, train_lines=5)
        b.event("attempt_ended", trial_id=tid, attempt=1)
    b.write_campaign()


def test_readers_of_the_analyst_copy_never_block_or_see_torn_state(ws: Workspace, tmp_path: Path):
    b = paired_campaign(ws.root)
    b.hypothesis("emb32", delta={"model.embedding_dim": 32})
    sync_campaign(ws.db_path, b.dir, analyst_path=ws.analyst_db_path)
    stop = tmp_path / "stop"
    readers = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "insights_reader.py"),
                str(ws.analyst_db_path),
                str(stop),
                str(tmp_path / f"reader{i}.json"),
            ],
            env=_env(),
        )
        for i in range(3)
    ]
    time.sleep(1.0)  # let the readers start (imports)
    syncs = 5
    for step in range(syncs):
        _grow(b, step, n_trials=5)
        report = sync_campaign(ws.db_path, b.dir, analyst_path=ws.analyst_db_path, retries=0)
        assert report.published and not report.warnings
        time.sleep(0.1)
    stop.touch()
    for r in readers:
        assert r.wait(timeout=30) == 0
    tallies = [json.loads((tmp_path / f"reader{i}.json").read_text()) for i in range(3)]

    # zero agent failures: retries=0 above, so any lock conflict would have raised
    expected_metrics = 36 + syncs * 5 * (5 + 2 + 2)
    assert _count(ws.db_path, "metrics") == expected_metrics
    assert _count(ws.analyst_db_path, "metrics") == expected_metrics
    assert _count(ws.db_path, "events") == 5 + syncs * 5
    for t in tallies:
        assert t["errors"] == [] and t["violations"] == []
        assert t["reads"] >= 5
    # the readers did see the campaign grow while they read
    assert max(len(t["metrics_seen"]) for t in tallies) >= 2


def _hold_open(db: Path) -> subprocess.Popen[str]:
    """Another process (an analyst opening the wrong file) holds db read-only until stdin closes."""
    code = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
        "print('holding', flush=True); sys.stdin.read(); con.close()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def test_reader_holding_the_writable_db_delays_results_to_next_sync(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    sync_campaign(ws.db_path, b.dir, analyst_path=ws.analyst_db_path)
    _grow(b, 0, n_trials=4)
    holder = _hold_open(ws.db_path)
    try:
        start = time.monotonic()
        with pytest.raises(InsightsLocked, match="next sync ingests them"):
            sync_campaign(ws.db_path, b.dir, analyst_path=ws.analyst_db_path, retries=2)
        assert time.monotonic() - start >= BASE_DELAY_S * 3  # it did back off and retry
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    assert _count(ws.analyst_db_path, "trials") == 6  # the analyst copy is untouched
    report = sync_campaign(ws.db_path, b.dir, analyst_path=ws.analyst_db_path)
    assert report.published
    assert _count(ws.analyst_db_path, "trials") == 10
    assert _count(ws.analyst_db_path, "metrics") == 36 + 4 * 9


def test_open_analyst_connection_keeps_its_snapshot(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    sync_campaign(ws.db_path, b.dir, analyst_path=ws.analyst_db_path)
    holder = _hold_open(ws.analyst_db_path)  # a notebook with the copy open, in another process
    old = duckdb.connect(str(ws.analyst_db_path), read_only=True)
    try:
        _grow(b, 0, n_trials=2)
        report = sync_campaign(ws.db_path, b.dir, analyst_path=ws.analyst_db_path, retries=0)
        assert report.published
        assert old.execute("SELECT count(*) FROM trials").fetchall() == [(6,)]
    finally:
        old.close()
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    assert _count(ws.analyst_db_path, "trials") == 8


_SYNC = """
import sys
from pathlib import Path
from rea_cli.insights import sync_campaign
print("start", flush=True)
sync_campaign(Path(sys.argv[1]), Path(sys.argv[2]), analyst_path=Path(sys.argv[3]))
print("done", flush=True)
"""


def test_kill_9_during_sync_then_sync_again(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    _grow(b, 0, n_trials=300)
    kills = 0
    for step, delay in enumerate((0.05, 0.3, 0.6, 1.0)):
        _grow(b, step + 1, n_trials=50)
        proc = subprocess.Popen(
            [sys.executable, "-c", _SYNC, str(ws.db_path), str(b.dir), str(ws.analyst_db_path)],
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "start"
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    assert kills >= 2

    report = sync_campaign(ws.db_path, b.dir, analyst_path=ws.analyst_db_path)
    assert not report.warnings
    n_trials = 6 + 300 + 4 * 50
    for db in (ws.db_path, ws.analyst_db_path):
        assert _count(db, "trials") == n_trials
        assert _count(db, "attempts") == n_trials
        assert _count(db, "metrics") == 36 + (n_trials - 6) * 9
        assert _count(db, "events") == 5 + n_trials - 6
    assert not list(ws.root.glob(".insights-analyst.duckdb.*.tmp"))
