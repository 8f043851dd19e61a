"""A full disk, for real: the workspace on a small tmpfs that the test fills (issue 10).

- sync and publish: a command that cannot write says so in one line and writes nothing half;
  a publish that failed for lack of space leaves the DB ahead of the analyst copy, and the next
  tick catches the copy up once space is freed;
- trials: launch refuses below [guardrails] min_free_mb; trials that hit ENOSPC fail as
  `disk_full` (infrastructure, not the hypothesis), the local runner waits instead of dying,
  the campaign pauses saying why, burns no retry (max_attempts_per_trial = 1 here), and goes on
  by itself once space is back.

Needs root (mount); skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.conftest import (
    TINY_SETTINGS,
    campaign_doc,
    make_workspace,
    processes_mentioning,
    run_rea,
    wait_for,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB tmpfs, unmounted afterwards (after every process using it has gone)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        for pid, _ in processes_mentioning(str(mount)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)  # our own runners and trials, if a test failed midway
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(disk: Path, leave_kb: int) -> None:
    """Fill the filesystem until `leave_kb` KB are free (a filler file, removed by _free)."""
    _free(disk)
    avail_kb = shutil.disk_usage(disk).free // 1024
    # unbuffered: a full disk shows in write(), never at close() when the file is closed
    with open(disk / "filler", "wb", buffering=0) as fh:
        fh.truncate(0)
        chunk = b"\0" * (1024 * 1024)
        left = max(0, avail_kb - leave_kb) * 1024
        while left > 0:
            n = min(left, len(chunk))
            try:
                written = fh.write(chunk[:n])
            except OSError:
                break
            if not written:
                break
            left -= written
    assert shutil.disk_usage(disk).free // 1024 <= leave_kb + 64


def _free(disk: Path) -> None:
    (disk / "filler").unlink(missing_ok=True)


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def _tmp_files(ws: Path) -> list[Path]:
    return [p for p in ws.rglob("*") if p.name.endswith(".tmp")]


def _state_in(db: Path) -> str:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return str(con.execute("SELECT state FROM campaigns").fetchall()[0][0])
    finally:
        con.close()


def _workspace(disk: Path, extra: str = "") -> Path:
    return make_workspace(disk / "ws", extra=TINY_SETTINGS + extra)


def test_sync_and_publish_on_a_full_disk(disk: Path) -> None:
    ws = _workspace(disk, "\n[insights]\nlock_retries = 0\n")
    plan = ["plan", "--model", "lr", "--dataset", "synthetic", "--budget", "2gpu-h"]
    assert run_rea(ws, *plan, "--profile", "tiny", "--id", "c1").returncode == 0
    journal = (ws / "campaigns/c1/journal.jsonl").read_bytes()

    _fill(disk, 0)  # nothing can be written at all
    done = run_rea(ws, "approve", "c1", "--yes")
    assert done.returncode == 1
    line = _one_line(done)
    assert "No space left on device" in line and "approval.json" in line and "free" in line
    assert not (ws / "campaigns/c1/approval.json").exists()
    assert campaign_doc(ws, "c1")["state"] == "PLANNED"
    assert (ws / "campaigns/c1/journal.jsonl").read_bytes() == journal
    assert not _tmp_files(ws)
    status = run_rea(ws, "status", "c1")  # reading needs no space
    assert status.returncode == 0, status.stderr

    # room for the campaign's files and the DB's transaction, not for a copy of the DB
    db_size_kb = (ws / "insights.duckdb").stat().st_size // 1024
    _fill(disk, db_size_kb // 2)
    done = run_rea(ws, "approve", "c1", "--yes")
    assert done.returncode == 0, done.stderr
    assert "insights not updated" in done.stderr and "No space left" in done.stderr
    assert campaign_doc(ws, "c1")["state"] == "APPROVED"
    assert _state_in(ws / "insights.duckdb") == "APPROVED"  # the DB has it...
    assert _state_in(ws / "insights-analyst.duckdb") == "PLANNED"  # ...the copy is behind
    assert not _tmp_files(ws)

    _free(disk)
    done = run_rea(ws, "tick", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["synced"] == ["c1"]
    assert _state_in(ws / "insights-analyst.duckdb") == "APPROVED"


def _jobs(ws: Path) -> list[dict]:
    out = []
    for path in sorted((ws / ".rea/local/jobs").glob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out


def test_trials_on_a_full_disk_pause_and_burn_no_retry(disk: Path) -> None:
    ws = _workspace(disk, "\n[guardrails]\nmax_attempts_per_trial = 1\nmin_free_mb = 3\n")
    plan = ["plan", "--model", "dcn_v2", "--dataset", "synthetic", "--budget", "4gpu-h"]
    assert run_rea(ws, *plan, "--profile", "demo", "--id", "df").returncode == 0
    assert run_rea(ws, "approve", "df", "--yes").returncode == 0

    _fill(disk, 1024)  # 1 MB free: below the floor of 3 MB
    done = run_rea(ws, "launch", "df")
    assert done.returncode == 1 and "min_free_mb" in _one_line(done)
    assert campaign_doc(ws, "df")["state"] == "APPROVED" and not campaign_doc(ws, "df")["trials"]

    _free(disk)
    assert run_rea(ws, "launch", "df").returncode == 0
    # the moment the first trial runs, the disk fills up
    wait_for(
        lambda: any(j["state"] == "RUNNING" for j in _jobs(ws)), 120, "a trial to run", step=0.02
    )
    _fill(disk, 0)
    time.sleep(8)  # the trials meet ENOSPC; the runner keeps waiting for space

    done = run_rea(ws, "tick")  # cannot even record a pause: one line for the campaign
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode == 1 and "No space left on device" in done.stdout
    assert campaign_doc(ws, "df")["state"] == "RUNNING"
    assert run_rea(ws, "status", "df").returncode == 0
    done = run_rea(ws, "resume", "df")  # the same from a wake-up or by hand
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "No space left on device" in errors[0], done.stderr
    assert campaign_doc(ws, "df")["state"] == "RUNNING"

    _fill(disk, 1024)  # writable again, still below the floor: the pause is recorded
    done = run_rea(ws, "tick", "--json")
    assert done.returncode == 0, done.stderr
    doc = campaign_doc(ws, "df")
    assert doc["state"] == "PAUSED" and doc["pause_kind"] == "disk_full", doc["state"]
    assert "min_free_mb" in doc["pause_reason"]
    status = run_rea(ws, "status", "df")
    assert "paused: only" in " ".join(status.stdout.split())

    _free(disk)  # space is back: the next tick lifts the pause, the campaign goes on
    # A wake-up job whose trials just ended may hold the campaign lock at this moment (the
    # tick then says skipped-busy): tick again, as cron would a minute later.
    end = time.monotonic() + 120
    while True:
        done = run_rea(ws, "tick", "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)["campaigns"][0]
        if report["action"] != "skipped-busy" or time.monotonic() > end:
            break
        time.sleep(1)
    assert report["action"] in ("resumed", "none"), report
    wait_for(
        lambda: (
            campaign_doc(ws, "df")["state"] != "PAUSED"
            and any(len(t["jobs"]) > 1 for t in campaign_doc(ws, "df")["trials"].values())
        ),
        300,
        "the failed trials to be retried",
    )
    doc = campaign_doc(ws, "df")
    retried = {tid: t for tid, t in doc["trials"].items() if len(t["jobs"]) > 1}
    for t in retried.values():
        first = t["jobs"][0]
        assert first["failure_kind"] == "disk_full", first
        assert first["action"] == "retry", first  # with max_attempts_per_trial = 1
    gave_up = [
        t for t in doc["trials"].values() if t["jobs"] and t["jobs"][-1]["action"] == "give_up"
    ]
    assert not gave_up
    events = [
        json.loads(line) for line in (ws / "campaigns/df/journal.jsonl").read_text().splitlines()
    ]
    states = [(e["previous"], e["state"]) for e in events if e["event"] == "state"]
    assert ("RUNNING", "PAUSED") in states and ("PAUSED", "RUNNING") in states
    run_rea(ws, "cancel", "df")
    wait_for(lambda: not processes_mentioning(str(ws)), 120, "every process to exit")
