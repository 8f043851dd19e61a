"""Choose and build the Scheduler backend named in rea.toml; map settings to what a round asks
for. Everything a submission needs is derived here from the workspace's settings alone, so a
fresh process (every wake-up, `rea tick`, a resume after a crash) builds the same request."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rea_cli.config import Settings
from rea_cli.errors import UsageError
from rea_cli.executor.scheduler import Resources, Scheduler
from rea_cli.workspace import Workspace

# The wake-up only runs the resume step: small and short.
WAKEUP_TIME_LIMIT_MIN = 30


def make_scheduler(ws: Workspace, settings: Settings | None = None) -> Scheduler:
    settings = settings or ws.settings
    if settings.backend == "local":
        from rea_cli.executor.local.backend import LocalScheduler

        return LocalScheduler(ws.state_dir / "local", max_parallel=settings.local.max_parallel)
    from rea_cli.executor.slurm import SlurmScheduler

    return SlurmScheduler(ws.state_dir / "slurm", python=sys.executable)


def preamble(ws: Workspace, settings: Settings) -> str:
    """The site preamble file's text ([slurm] preamble), "" when none is set."""
    name = settings.slurm.preamble if settings.backend == "slurm" else None
    if not name:
        return ""
    path = (ws.root / name).resolve()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise UsageError(
            f"[slurm].preamble file {path} cannot be read; "
            "create it or remove the key from rea.toml"
        ) from None


def trial_resources(
    settings: Settings, time_limit_min: float, gpus_per_trial: int, mem_gb: float | None = None
) -> Resources:
    """What one trial task asks for (`mem_gb`: a runbook's raise over the settings')."""
    if settings.backend == "local":
        return Resources(time_limit_min=time_limit_min, gpus_per_task=gpus_per_trial)
    s = settings.slurm
    return Resources(
        time_limit_min=time_limit_min,
        gpus_per_task=gpus_per_trial,
        cpus_per_task=s.cpus_per_trial,
        mem_gb=mem_gb or s.mem_gb,
        partition=s.partition,
        account=s.account,
        qos=s.qos,
        constraint=s.constraint,
        extra_sbatch=dict(s.extra_sbatch),
        setup=tuple(s.setup),
    )


def wakeup_resources(settings: Settings) -> Resources:
    """What a wake-up asks for: 1 CPU, no GPU, a short limit, and the site's partition,
    account, QOS and setup lines (sites that require an account require it of every job)."""
    if settings.backend == "local":
        return Resources(time_limit_min=0, cpus_per_task=1)
    s = settings.slurm
    return Resources(
        time_limit_min=WAKEUP_TIME_LIMIT_MIN,
        cpus_per_task=1,
        gpus_per_task=0,
        partition=s.partition,
        account=s.account,
        qos=s.qos,
        setup=tuple(s.setup),
    )


def parallelism(settings: Settings) -> int:
    if settings.backend == "local":
        return settings.local.max_parallel
    return settings.slurm.array_parallelism


def trial_env(settings: Settings) -> dict[str, str]:
    """Environment of every trial: torch threads sized to what one trial may use."""
    if settings.backend == "local":
        threads = max(1, (os.cpu_count() or 1) // settings.local.max_parallel)
    else:
        threads = settings.slurm.cpus_per_trial
    return {"REA_TORCH_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}


def trial_argv(spec_path: Path) -> list[str]:
    return [sys.executable, "-m", "ranking_models.train", str(spec_path)]


def wakeup_argv(ws: Workspace, campaign_id: str) -> list[str]:
    return [sys.executable, "-m", "rea_cli", "--workspace", str(ws.root), "resume", campaign_id]
