"""Real-cluster tests of the Slurm backend (the local cluster of scripts/slurm-up.sh).

Every test here is marked `slurm` and skipped, with the reason shown by `pytest -ra`, when the
cluster does not answer `scontrol ping` / `sinfo`.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rea_cli.executor.scheduler import campaign_job_prefix, workspace_tag
from rea_cli.executor.slurm import SlurmRunner, SlurmScheduler


def slurm_down_reason() -> str | None:
    if shutil.which("scontrol") is None or shutil.which("sinfo") is None:
        return "Slurm commands are not installed (start the local cluster: make slurm-up)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10)
        sinfo = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Slurm does not answer: {exc} (make slurm-up)"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        said = (ping.stdout + ping.stderr).strip().splitlines() or ["no answer"]
        return f"Slurm is down: {said[0]} (make slurm-up)"
    # "completing": the node is ending a previous test's jobs, and takes new ones right after
    usable = ("idle", "mixed", "allocated", "completing", "planned")
    if not any(s.strip() in usable for s in sinfo.stdout.splitlines()):
        return f"no usable Slurm node: sinfo says {sinfo.stdout.strip()!r} (make slurm-up)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    reason = None
    checked = False
    for item in items:
        if here not in Path(str(item.fspath)).parents:
            continue
        item.add_marker(pytest.mark.slurm)
        if not checked:
            reason, checked = slurm_down_reason(), True
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def campaign() -> str:
    """A campaign id unique to this test, so find() on the shared cluster sees only our jobs."""
    return f"slurmtest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def ws_tag(tmp_path: Path) -> str:
    """The workspace tag of the test's job names (tmp_path stands for the workspace)."""
    return workspace_tag(tmp_path)


@pytest.fixture
def slurm(tmp_path: Path, campaign: str, ws_tag: str) -> Iterator[SlurmScheduler]:
    scheduler = SlurmScheduler(tmp_path / "state", runner=SlurmRunner(backoff_s=0.2))
    yield scheduler
    found = scheduler.find(campaign_job_prefix(ws_tag, campaign))
    left = [j.job_id for j in found if not j.state.has_ended]
    if left:
        scheduler.cancel(left)
