"""One Scheduler contract suite, run against every backend (local and slurm).

The slurm parameter is skipped, with the reason shown by `pytest -ra`, when the cluster does
not answer `scontrol ping`. When it answers, a backend that does not import is a failure, never a
skip: a broken import must not pass as "no cluster here".
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rea_cli.executor.scheduler import Scheduler, campaign_job_prefix, workspace_tag
from rea_cli.executor.scheduler import job_name as make_job_name


def _slurm_unavailable() -> str | None:
    if shutil.which("scontrol") is None:
        return "scontrol is not on PATH (start the local cluster: make slurm-up)"
    try:
        ping = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scontrol ping failed: {exc} (make slurm-up)"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return f"Slurm is down: {ping.stdout.strip() or ping.stderr.strip()} (make slurm-up)"
    return None


def _make_slurm(state_dir: Path) -> Scheduler:
    down = _slurm_unavailable()
    if down:
        pytest.skip(down)
    from rea_cli.executor.slurm import SlurmScheduler

    return SlurmScheduler(state_dir)


def _make_local(state_dir: Path) -> Scheduler:
    from rea_cli.executor.local import LocalScheduler

    return LocalScheduler(state_dir, cancel_grace_s=5.0)


@pytest.fixture
def ws_tag(tmp_path: Path) -> str:
    """The workspace tag job names carry (the test's tmp_path stands for the workspace)."""
    return workspace_tag(tmp_path)


@pytest.fixture
def campaign_id() -> str:
    """A campaign id unique to this test, so find() on a shared cluster sees only our jobs."""
    return f"contract-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def job_name(ws_tag: str, campaign_id: str) -> str:
    """The array job name of the test's one round, built as the agent builds it."""
    return make_job_name(ws_tag, campaign_id, "validation", 1)


@pytest.fixture(params=["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def scheduler(
    request: pytest.FixtureRequest, tmp_path: Path, ws_tag: str, campaign_id: str
) -> Iterator[Scheduler]:
    """A backend with its own state directory. Jobs the test leaves are cancelled afterwards."""
    make = {"local": _make_local, "slurm": _make_slurm}[request.param]
    backend = make(tmp_path / "scheduler-state")
    yield backend
    leftovers = backend.find(campaign_job_prefix(ws_tag, campaign_id))
    backend.cancel([j.job_id for j in leftovers if not j.state.has_ended])
