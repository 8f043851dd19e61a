"""Shared fixtures: real workspaces and the real `rea` command run as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

TINY_SETTINGS = """
[local]
max_parallel = 2

[planner]
# small enough for a test: two hypotheses screened, short searches; a generous gate so that
# winners (and hence a combination) are likely whatever the numbers
max_hypotheses = 2
validation_seeds = 2
significance = 0.9
exploitation_batch = 2
stall_batches = 1
confirmation_seeds = 5
"""


def run_rea(
    ws: Path | None, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a new process (as a user or a wake-up job would)."""
    cmd = [sys.executable, "-m", "rea_cli"]
    if ws is not None:
        cmd += ["--workspace", str(ws)]
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def make_workspace(root: Path, backend: str = "local", extra: str = TINY_SETTINGS) -> Path:
    done = run_rea(None, "init", str(root), "--backend", backend)
    assert done.returncode == 0, done.stderr
    config = root / "rea.toml"
    text = config.read_text()
    # drop the sections we override, keep the rest of the commented defaults
    sections = [line.strip() for line in extra.splitlines() if line.strip().startswith("[")]
    for section in sections:
        if section in text:
            head, _, tail = text.partition(section)
            nxt = tail.find("\n[")
            text = head + (tail[nxt + 1 :] if nxt >= 0 else "")
    config.write_text(text + extra)
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line contains `text` (e.g. a workspace path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            continue  # zombies are dead
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
        if text in cmdline:
            found.append((int(entry.name), cmdline))
    return found


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def campaign_doc(ws: Path, cid: str) -> dict:
    """The campaign's saved state (campaign.json)."""
    import json

    return json.loads((ws / "campaigns" / cid / "campaign.json").read_text())


def start_campaign(
    ws: Path,
    cid: str,
    extra_env: dict[str, str] | None = None,
    *,
    profile: str = "tiny",
    budget: str = "4gpu-h",
    launch: bool = True,
) -> None:
    """`rea plan` (DCN-v2, synthetic data), `rea approve`, then `rea launch` unless told not to.

    With extra_env (fault injection), the launch itself may be killed: its exit code is not checked.
    """
    plan = run_rea(
        ws,
        "plan",
        "--model",
        "dcn_v2",
        "--dataset",
        "synthetic",
        "--budget",
        budget,
        "--profile",
        profile,
        "--id",
        cid,
    )
    assert plan.returncode == 0, plan.stderr
    approve = run_rea(ws, "approve", cid, "--yes")
    assert approve.returncode == 0, approve.stderr
    if launch:
        done = run_rea(ws, "launch", cid, env=extra_env)
        assert done.returncode == 0 or extra_env, done.stderr
