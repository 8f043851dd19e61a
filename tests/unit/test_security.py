"""Who may approve, what the approval binds, generated text that cannot be injected, and the
insights DB catching up after a sync it missed (issue 10). Real workspaces, the real `rea`
command in new processes, real DuckDB files; no trial runs here (tests/local has those)."""

from __future__ import annotations

import json
import os
import pwd
import shlex
import stat
from pathlib import Path

import duckdb
import pytest

from rea_cli.cron import cron_block
from rea_cli.errors import UsageError
from rea_cli.insights import folder_digest, read_watermarks
from tests.conftest import campaign_doc, run_rea

PLAN = ["plan", "--model", "lr", "--dataset", "synthetic", "--budget", "2gpu-h", "--profile"]


def _plan(ws: Path, cid: str) -> None:
    done = run_rea(ws, *PLAN, "tiny", "--id", cid)
    assert done.returncode == 0, done.stderr


def _settings(ws: Path, text: str) -> None:
    config = ws / "rea.toml"
    config.write_text(config.read_text().replace("[approval]\n", "[approval-old]\n") + text)
    # the commented defaults of `rea init` already have an [approval] section: drop its keys
    lines, out, skip = config.read_text().splitlines(), [], False
    for line in lines:
        if line.strip() == "[approval-old]":
            skip = True
            continue
        if skip and line.startswith("["):
            skip = False
        if not skip:
            out.append(line)
    config.write_text("\n".join(out) + "\n")


def _error(done: object) -> str:
    stderr = done.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def _events(ws: Path, cid: str) -> list[dict]:
    path = ws / "campaigns" / cid / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _copy_rows(ws: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(ws / "insights-analyst.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# ----------------------------------------------------------------------------- who approves


def test_the_approver_is_the_os_user_not_logname(workspace: Path) -> None:
    _plan(workspace, "c1")
    fake = {"LOGNAME": "anyone", "USER": "anyone", "USERNAME": "anyone"}
    done = run_rea(workspace, "approve", "c1", "--yes", env=fake)
    assert done.returncode == 0, done.stderr
    me = pwd.getpwuid(os.getuid()).pw_name
    path = workspace / "campaigns/c1/approval.json"
    record = json.loads(path.read_text())
    assert (record["by"], record["uid"], record["planner"]) == (me, os.getuid(), me)
    assert (record["approvers"], record["approver_not_planner"]) == ([], False)
    st = path.stat()
    assert st.st_uid == os.getuid()
    assert stat.S_IMODE(st.st_mode) & 0o222 == 0  # read-only for everyone, the owner included
    assert campaign_doc(workspace, "c1")["created_by"] == me
    # both identities are in the DB (the analyst copy), with the policy it was approved under
    ((approved_by, approval),) = _copy_rows(
        workspace, "SELECT approved_by, approval FROM approvals WHERE campaign_id = 'c1'"
    )
    assert approved_by == me and json.loads(approval)["planner"] == me
    (created_by,) = _copy_rows(
        workspace, "SELECT created_by FROM campaigns WHERE campaign_id = 'c1'"
    )
    assert created_by == (me,)
    assert "anyone" not in path.read_text() + (workspace / "campaigns/c1/journal.jsonl").read_text()


def test_an_approver_outside_the_allow_list_is_refused(workspace: Path) -> None:
    _settings(workspace, '\n[approval]\napprovers = ["someone-else", "a-lead"]\n')
    _plan(workspace, "c1")
    done = run_rea(workspace, "approve", "c1", "--yes")
    assert done.returncode == 1
    line = _error(done)
    assert "may not approve" in line and "someone-else, a-lead" in line
    assert not (workspace / "campaigns/c1/approval.json").exists()
    assert campaign_doc(workspace, "c1")["state"] == "PLANNED"
    assert [e["event"] for e in _events(workspace, "c1")] == ["planned"]


def test_the_planner_may_not_approve_when_the_policy_says_so(workspace: Path) -> None:
    _settings(workspace, "\n[approval]\napprover_not_planner = true\n")
    _plan(workspace, "c1")
    done = run_rea(workspace, "approve", "c1", "--yes")
    assert done.returncode == 1
    assert "another user must approve" in _error(done)
    assert not (workspace / "campaigns/c1/approval.json").exists()


def test_the_policy_is_checked_again_at_launch(workspace: Path) -> None:
    _plan(workspace, "c1")
    assert run_rea(workspace, "approve", "c1", "--yes").returncode == 0
    _settings(workspace, '\n[approval]\napprovers = ["a-lead"]\n')  # the site tightened it
    done = run_rea(workspace, "launch", "c1")
    assert done.returncode == 1
    assert "may not approve" in _error(done)
    assert campaign_doc(workspace, "c1")["state"] == "APPROVED"


def test_the_approval_is_written_once(workspace: Path) -> None:
    _plan(workspace, "c1")
    assert run_rea(workspace, "approve", "c1", "--yes").returncode == 0
    path = workspace / "campaigns/c1/approval.json"
    first = path.read_bytes()
    done = run_rea(workspace, "approve", "c1", "--yes")
    assert done.returncode == 1 and "only a PLANNED" in _error(done)
    assert path.read_bytes() == first


def test_an_approval_killed_after_its_record_is_finished_by_the_next(workspace: Path) -> None:
    _plan(workspace, "c1")
    killed = run_rea(workspace, "approve", "c1", "--yes", env={"REA_CRASH_AT": "approval_written"})
    assert killed.returncode == -9
    path = workspace / "campaigns/c1/approval.json"
    record = path.read_bytes()
    assert campaign_doc(workspace, "c1")["state"] == "PLANNED"
    done = run_rea(workspace, "approve", "c1", "--yes")
    assert done.returncode == 0, done.stderr
    assert path.read_bytes() == record  # the record stands; only the state caught up
    assert campaign_doc(workspace, "c1")["state"] == "APPROVED"


def test_an_approval_record_rewritten_in_place_is_refused(workspace: Path) -> None:
    """Making the record writable and editing it (same owner) to another plan hash: refused."""
    _plan(workspace, "c1")
    assert run_rea(workspace, "approve", "c1", "--yes").returncode == 0
    path = workspace / "campaigns/c1/approval.json"
    path.chmod(0o664)
    done = run_rea(workspace, "launch", "c1")
    assert done.returncode == 1 and "can be rewritten by others" in _error(done)
    record = json.loads(path.read_text())
    record["approved_gpu_hours"] = 1000.0
    path.write_text(json.dumps(record))
    path.chmod(0o444)
    done = run_rea(workspace, "launch", "c1")
    assert done.returncode == 1 and "were approved" in _error(done)
    assert campaign_doc(workspace, "c1")["state"] == "APPROVED"


# ----------------------------------------------------------------------------- the plan


def test_the_plan_carries_its_runbooks(workspace: Path) -> None:
    (workspace / "runbooks").mkdir()
    (workspace / "runbooks/site.toml").write_text(
        '[[runbook]]\nid = "site-timeout"\ntitle = "t"\nmatch.job_state = ["TIMEOUT"]\n'
        'diagnosis = "site says"\naction = "give_up"\n'
    )
    _plan(workspace, "c1")
    plan = json.loads((workspace / "campaigns/c1/plan.json").read_text())
    ids = [r["id"] for r in plan["runbooks"]]
    assert ids[0] == "site-timeout" and "disk-full" in ids and "unknown" in ids
    # the approved copy is what diagnoses: editing the folder afterwards changes nothing
    (workspace / "runbooks/site.toml").write_text('[[runbook]]\nid = "x"\naction = "explode"\n')
    from rea_cli.app.resume import load_plan
    from rea_cli.campaign.store import CampaignStore
    from rea_cli.workspace import Workspace

    books = load_plan(CampaignStore(Workspace(workspace), "c1")).runbooks
    assert [b.id for b in books] == ids


def test_cpu_only_trials_still_count_one_device(workspace: Path) -> None:
    config = workspace / "rea.toml"
    _plan(workspace, "gpu1")
    config.write_text(config.read_text().replace("gpus_per_trial = 1", "gpus_per_trial = 0", 1))
    _plan(workspace, "cpu")
    reserved = {
        cid: [
            p["reserved_gpu_hours"]
            for p in json.loads((workspace / f"campaigns/{cid}/plan.json").read_text())["phases"]
        ]
        for cid in ("gpu1", "cpu")
    }
    assert all(r > 0 for r in reserved["cpu"])
    assert reserved["cpu"] == reserved["gpu1"]


# ----------------------------------------------------------------------------- injection


@pytest.mark.parametrize("bad", ["/tmp/ws\n* * * * * touch /tmp/pwned", "/tmp/ws\r", "/tmp/\x1bws"])
def test_a_crontab_line_cannot_be_injected(bad: str) -> None:
    with pytest.raises(UsageError, match="newline or control character"):
        cron_block(Path(bad), "/usr/bin/python3")
    with pytest.raises(UsageError, match="newline or control character"):
        cron_block(Path("/tmp/ws"), "/usr/bin/python3", path="/usr/bin\n* * * * * touch /x")


def test_cron_entry_quotes_every_path(tmp_path: Path) -> None:
    from tests.conftest import make_workspace

    ws = make_workspace(tmp_path / "a ws $(touch pwned) 50%")
    done = run_rea(ws, "cron", "install")
    assert done.returncode == 0, done.stderr
    entries = [line for line in done.stdout.splitlines() if line and not line.startswith("#")]
    assert len(entries) == 1
    fields = entries[0].split(None, 5)
    argv = shlex.split(fields[5].replace(r"\%", "%"))
    assert argv[argv.index("--workspace") + 1] == str(ws)
    assert not (tmp_path / "pwned").exists()


def test_a_workspace_path_with_a_newline_is_refused(tmp_path: Path) -> None:
    done = run_rea(None, "init", str(tmp_path / "a\nb"))
    assert done.returncode == 2 and "newline" in _error(done)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- nothing stale


def _held(ws: Path) -> duckdb.DuckDBPyConnection:
    """A reader holding the agent's DB file (its shared lock keeps every writer out)."""
    return duckdb.connect(str(ws / "insights.duckdb"), read_only=True)


def _no_retries(ws: Path) -> None:
    config = ws / "rea.toml"
    config.write_text(config.read_text().replace("lock_retries = 5", "lock_retries = 0"))


def test_a_sync_missed_while_a_reader_held_the_db_is_done_by_the_next_resume(
    workspace: Path,
) -> None:
    _no_retries(workspace)
    _plan(workspace, "c1")
    reader = _held(workspace)
    try:
        done = run_rea(workspace, "approve", "c1", "--yes")
        assert done.returncode == 0, done.stderr
        assert "insights not updated" in done.stderr
    finally:
        reader.close()
    assert _copy_rows(workspace, "SELECT state FROM campaigns") == [("PLANNED",)]  # behind
    done = run_rea(workspace, "resume", "c1")  # nothing to run: a noop, which still catches up
    assert done.returncode == 0 and "noop" in done.stdout, done.stderr
    assert _copy_rows(workspace, "SELECT state FROM campaigns") == [("APPROVED",)]
    marks = read_watermarks(workspace / "insights-analyst.duckdb")
    assert marks == {"c1": folder_digest(workspace / "campaigns/c1")[0]}
    ((seq, state),) = _copy_rows(workspace, "SELECT journal_seq, state FROM sync_watermark")
    assert (seq, state) == (_events(workspace, "c1")[-1]["seq"], "APPROVED")


def test_tick_catches_up_every_campaign_whatever_its_state(workspace: Path) -> None:
    _no_retries(workspace)
    for cid in ("c1", "c2", "c3"):
        _plan(workspace, cid)
    reader = _held(workspace)
    try:
        assert run_rea(workspace, "approve", "c1", "--yes").returncode == 0
        assert run_rea(workspace, "cancel", "c2").returncode == 0  # final: nothing resumes it
    finally:
        reader.close()
    before = dict(_copy_rows(workspace, "SELECT campaign_id, state FROM campaigns"))
    assert before == {"c1": "PLANNED", "c2": "PLANNED", "c3": "PLANNED"}
    done = run_rea(workspace, "tick", "--json")
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(done.stdout)["synced"]) == ["c1", "c2"]
    after = dict(_copy_rows(workspace, "SELECT campaign_id, state FROM campaigns"))
    assert after == {"c1": "APPROVED", "c2": "CANCELLED", "c3": "PLANNED"}
    # up to date now: the next tick has nothing to catch up with
    again = run_rea(workspace, "tick", "--json")
    assert json.loads(again.stdout)["synced"] == []


def test_a_copy_removed_or_damaged_is_republished(workspace: Path) -> None:
    _plan(workspace, "c1")
    copy = workspace / "insights-analyst.duckdb"
    copy.chmod(0o644)
    copy.write_bytes(b"\x00" * 4096)
    done = run_rea(workspace, "tick", "--json")
    assert json.loads(done.stdout)["synced"] == ["c1"]
    assert _copy_rows(workspace, "SELECT state FROM campaigns") == [("PLANNED",)]
    copy.unlink()
    done = run_rea(workspace, "resume", "c1")
    assert done.returncode == 0, done.stderr
    assert _copy_rows(workspace, "SELECT state FROM campaigns") == [("PLANNED",)]


def test_every_broken_binding_holds_the_campaign(workspace: Path) -> None:
    """What the resume step checks before anything is submitted (it pauses on any of them)."""
    from rea_cli.app.resume import hold_reason
    from rea_cli.campaign.store import CampaignStore
    from rea_cli.workspace import Workspace

    _plan(workspace, "c1")
    assert run_rea(workspace, "approve", "c1", "--yes").returncode == 0
    store = CampaignStore(Workspace(workspace), "c1")
    c = store.load()
    assert hold_reason(store, c) is None
    approval, plan = store.approval_path, store.plan_path
    record, plan_bytes = approval.read_bytes(), plan.read_bytes()

    _settings(workspace, '\n[approval]\napprovers = ["a-lead"]\n')  # the policy changed
    store = CampaignStore(Workspace(workspace), "c1")
    held = hold_reason(store, c)
    assert held is not None and held[0] == "approval" and "may not approve" in held[1]
    _settings(workspace, "\n[approval]\napprovers = []\n")
    store = CampaignStore(Workspace(workspace), "c1")

    approval.chmod(0o644)
    approval.write_text("{damaged")
    kind, why = hold_reason(store, c)
    assert kind == "approval" and "approval.json is damaged" in why
    approval.write_bytes(record)
    approval.chmod(0o444)
    plan.unlink()
    kind, why = hold_reason(store, c)
    assert kind == "approval" and "plan.json is missing" in why
    plan.write_bytes(plan_bytes)
    assert hold_reason(store, c) is None

    config = workspace / "rea.toml"
    config.write_text(config.read_text().replace("min_free_mb = 100", "min_free_mb = 1000000000"))
    store = CampaignStore(Workspace(workspace), "c1")
    kind, why = hold_reason(store, c)
    assert kind == "disk_full" and "min_free_mb = 1000000000" in why
