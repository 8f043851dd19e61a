"""A workspace shared by a group, used by two real users (issue 10): alice plans and launches,
bob approves and watches, each as their own uid (runuser), each with their own umask.

- `rea init --shared --group G`: setgid, group-writable folders; rea runs with the group's
  umask there, so even alice's `umask 077` leaves every file readable by bob, none by others;
- bob can list, read, tick and approve alice's campaign (no PermissionError anywhere);
- approver_not_planner: alice may not approve her own plan, bob may;
- the approval record is bob's file: alice replacing it (she can, the folder is the group's)
  is detected at the next resume, which pauses the campaign saying who wrote it;
- in a workspace that is not shared, a file bob cannot read is one line naming it and the fix.

Needs root (useradd, runuser); skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TINY_SETTINGS, processes_mentioning, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="creating users and switching to them needs root"),
    pytest.mark.skipif(shutil.which("runuser") is None, reason="runuser is not installed"),
]

GROUP, ALICE, BOB = "rea-test-share", "rea-test-alice", "rea-test-bob"
REPO = Path(__file__).resolve().parents[2]
PLAN = ["plan", "--model", "lr", "--dataset", "synthetic", "--budget", "2gpu-h", "--profile"]


def _python() -> str:
    """A Python other users can run: this one, unless it lives under a private folder (pyenv
    under /root): then the system's, of the same version, with our site-packages."""
    real = Path(os.path.realpath(sys.executable))
    if all(p.stat().st_mode & stat.S_IXOTH for p in real.parents):
        return sys.executable
    system = shutil.which(
        f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin"
    )
    if system is None:
        pytest.skip(f"{sys.executable} is private and no /usr/bin Python of the same version")
    return system


@pytest.fixture(scope="module")
def people() -> Iterator[Path]:
    """The group, the two users, and a base folder they share; removed afterwards."""
    created = []
    if _run(["getent", "group", GROUP]).returncode != 0:
        assert _run(["groupadd", GROUP]).returncode == 0
        created.append(["groupdel", GROUP])
    for user in (ALICE, BOB):
        if _run(["id", user]).returncode != 0:
            done = _run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", "-G", GROUP, user])
            assert done.returncode == 0, done.stderr
            created.insert(0, ["userdel", user])
    base = Path(tempfile.mkdtemp(prefix="rea-shared-", dir="/tmp"))
    base.chmod(0o755)
    for user in (ALICE, BOB):
        home = base / f"home-{user}"
        home.mkdir()
        shutil.chown(home, user)
        home.chmod(0o700)
    (base / "spaces").mkdir()
    shutil.chown(base / "spaces", ALICE, GROUP)
    (base / "spaces").chmod(0o2775)
    try:
        yield base
    finally:
        for pid, _ in processes_mentioning(str(base)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        shutil.rmtree(base, ignore_errors=True)
        for cmd in created:
            _run(cmd)


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True)


def _site_packages() -> list[str]:
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return sorted(p for p in paths if Path(p).is_dir())


def rea_as(
    base: Path, user: str, ws: Path | None, *args: str, umask: str = "022"
) -> subprocess.CompletedProcess[str]:
    """The real `rea` command as `user` (their uid and groups), with their umask."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(base / f"home-{user}"),
        "PYTHONPATH": os.pathsep.join([str(REPO), *_site_packages()]),
        "COLUMNS": "200",
        "LANG": "C.UTF-8",
    }
    workspace = ["--workspace", str(ws)] if ws is not None else []
    argv = [_python(), "-m", "rea_cli", *workspace, *args]
    cmd = [
        "runuser",
        "-u",
        user,
        "--",
        "env",
        "-i",
        *(f"{k}={v}" for k, v in env.items()),
        "sh",
        "-c",
        f'umask {umask} && exec "$@"',
        "sh",
        *argv,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(base))


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    return done


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def _doc(ws: Path, cid: str) -> dict:
    return json.loads((ws / "campaigns" / cid / "campaign.json").read_text())


def _settings(ws: Path, extra: str) -> None:
    """The test's settings (sections of `extra` replace rea init's), and the second person
    rule. root edits the file: its owner, group and mode stay as rea made them."""
    config = ws / "rea.toml"
    text = config.read_text().replace("approver_not_planner = false", "approver_not_planner = true")
    for section in [ln.strip() for ln in extra.splitlines() if ln.strip().startswith("[")]:
        head, _, tail = text.partition(section)
        nxt = tail.find("\n[")
        text = head + (tail[nxt + 1 :] if nxt >= 0 else "")
    config.write_text(text + extra)


def test_two_users_share_a_workspace(people: Path) -> None:
    base = people
    ws = base / "spaces" / "team"
    # alice's own umask is private (077): the shared workspace still works for the group
    _ok(
        rea_as(
            base,
            ALICE,
            None,
            "init",
            str(ws),
            "--backend",
            "local",
            "--shared",
            "--group",
            GROUP,
            umask="077",
        )
    )
    _settings(ws, TINY_SETTINGS)
    assert ws.stat().st_gid == grp.getgrnam(GROUP).gr_gid and ws.stat().st_mode & stat.S_ISGID
    _ok(rea_as(base, ALICE, ws, *PLAN, "tiny", "--id", "s1", umask="077"))

    listing = json.loads(_ok(rea_as(base, BOB, ws, "status", "--json")).stdout)
    assert [(r["campaign_id"], r["state"]) for r in listing] == [("s1", "PLANNED")]
    _ok(rea_as(base, BOB, ws, "status", "s1"))

    refused = rea_as(base, ALICE, ws, "approve", "s1", "--yes", umask="077")
    assert refused.returncode == 1 and "another user must approve" in _one_line(refused)
    _ok(rea_as(base, BOB, ws, "approve", "s1", "--yes"))
    approval = ws / "campaigns/s1/approval.json"
    record = json.loads(approval.read_text())
    bob = pwd.getpwnam(BOB)
    assert (record["by"], record["uid"], record["planner"]) == (BOB, bob.pw_uid, ALICE)
    assert approval.stat().st_uid == bob.pw_uid
    assert stat.S_IMODE(approval.stat().st_mode) & 0o222 == 0  # nobody writes it in place

    _ok(rea_as(base, ALICE, ws, "launch", "s1", umask="077"))
    assert _doc(ws, "s1")["state"] == "RUNNING"
    _ok(rea_as(base, BOB, ws, "tick"))  # bob's tick takes alice's locks, reads her job records
    _ok(rea_as(base, BOB, ws, "status", "s1"))
    _ok(rea_as(base, BOB, ws, "insights", "sql", "SELECT campaign_id, state FROM campaigns"))

    # one permission policy: the group reads and writes everything, nobody else writes anything
    for path in [ws, *ws.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert not mode & 0o002, f"{path} is world-writable ({mode:o})"
        assert mode & 0o040, f"{path} is not group-readable ({mode:o})"
        if path.is_dir():
            assert mode & 0o070 == 0o070 and path.stat().st_mode & stat.S_ISGID, path

    # alice swaps bob's approval for her own copy (the folder is the group's, so she can)
    forged = approval.read_text()
    _ok(rea_as(base, ALICE, ws, "status", "s1"))
    swap = (
        f"import os, pathlib; p = pathlib.Path({str(approval)!r}); t = p.with_name('x.json'); "
        f"t.write_text({forged!r}); t.chmod(0o444); os.replace(t, p)"
    )
    swapped = subprocess.run(
        ["runuser", "-u", ALICE, "--", _python(), "-c", swap], capture_output=True, text=True
    )
    assert swapped.returncode == 0, swapped.stderr
    assert approval.stat().st_uid == pwd.getpwnam(ALICE).pw_uid
    _ok(rea_as(base, ALICE, ws, "resume", "s1", umask="077"))
    doc = _doc(ws, "s1")
    assert doc["state"] == "PAUSED", doc["state"]
    assert f"records {BOB} as approver but was written by {ALICE}" in doc["pause_reason"]
    shown = " ".join(_ok(rea_as(base, BOB, ws, "status", "s1")).stdout.split())
    assert f"was written by {ALICE}" in shown

    _ok(rea_as(base, BOB, ws, "cancel", "s1"))
    wait_for(lambda: not processes_mentioning(str(ws)), 120, "every process to exit")


def test_a_file_another_user_cannot_read_is_one_line(people: Path) -> None:
    base = people
    ws = base / "spaces" / "private"
    _ok(rea_as(base, ALICE, None, "init", str(ws), "--backend", "local"))
    (ws / "rea.toml").chmod(0o600)  # alice keeps her settings to herself
    done = rea_as(base, BOB, ws, "status")
    assert done.returncode == 1
    line = _one_line(done)
    assert "rea.toml" in line and "permission denied" in line and "--shared" in line
