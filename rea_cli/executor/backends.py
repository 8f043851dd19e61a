"""Choose and build the Scheduler backend named in rea.toml; map settings to task resources."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rea_cli.config import Settings
from rea_cli.errors import UsageError
from rea_cli.executor.scheduler import Resources, Scheduler
from rea_cli.workspace import Workspace


def make_scheduler(ws: Workspace, settings: Settings | None = None) -> Scheduler:
    settings = settings or ws.settings
    if settings.backend == "local":
        from rea_cli.executor.local.backend import LocalScheduler

        return LocalScheduler(ws.state_dir / "local", max_parallel=settings.local.max_parallel)
    from rea_cli.executor.slurm import SlurmScheduler

    return SlurmScheduler(
        ws.state_dir / "slurm", python=sys.executable, preamble=preamble(ws, settings)
    )


def preamble(ws: Workspace, settings: Settings) -> str:
    name = settings.slurm.preamble
    if not name:
        return ""
    path = (ws.root / name).resolve()
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        raise UsageError(
            f"[slurm].preamble file {path} cannot be read; "
            "create it or remove the key from rea.toml"
        ) from None


def resources(settings: Settings, time_limit_min: int, gpus_per_trial: int) -> Resources:
    if settings.backend == "local":
        return Resources(time_limit_min=time_limit_min, gpus_per_task=gpus_per_trial)
    s = settings.slurm
    return Resources(
        time_limit_min=time_limit_min,
        gpus_per_task=gpus_per_trial,
        cpus_per_task=s.cpus_per_trial,
        mem_gb=s.mem_gb,
        partition=s.partition,
        account=s.account,
        qos=s.qos,
        constraint=s.constraint,
        extra_sbatch=dict(s.extra_sbatch),
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
