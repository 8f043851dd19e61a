"""`rea init`: a workspace whose per-trial resources fit the cluster it finds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rea_cli.errors import SchedulerError
from rea_cli.workspace import Workspace, check_init, init_workspace

# What rea.toml asks per trial when the cluster allows it (config.default_toml's defaults).
WANTED = {"cpus_per_trial": 4, "mem_gb": 16.0, "gpus_per_trial": 1}


@dataclass(frozen=True)
class InitResult:
    workspace: Workspace
    note: str | None  # how the per-trial resources were chosen (Slurm only)


def init(
    directory: Path, backend: str | None = None, *, shared: bool = False, group: str | None = None
) -> InitResult:
    # bad arguments are refused before the cluster is asked anything (a slow or unreachable
    # controller must not stand between a typo and its one-line error)
    _, chosen, _ = check_init(directory, backend=backend, shared=shared, group=group)
    fitted, note = slurm_defaults() if chosen == "slurm" else ({}, None)
    ws = init_workspace(
        directory, backend=chosen, shared=shared, group=group, slurm_defaults=fitted
    )
    return InitResult(ws, note)


def slurm_defaults() -> tuple[dict[str, Any], str]:
    """Per-trial CPUs, memory and GPUs no larger than the default partition's largest node."""
    from rea_cli.executor.slurm import SlurmScheduler

    try:
        cap = SlurmScheduler(Path("/nonexistent")).capacity()  # reads only: no state written
    except SchedulerError as exc:
        return {}, f"Slurm did not answer ({exc}); check [slurm] in rea.toml"
    if cap is None:
        return {}, "Slurm lists no node in its default partition; check [slurm] in rea.toml"
    mem = min(WANTED["mem_gb"], math.floor(cap.mem_gb) or math.floor(cap.mem_gb * 10) / 10)
    fitted = {
        "cpus_per_trial": max(1, min(int(WANTED["cpus_per_trial"]), cap.cpus)),
        "mem_gb": max(mem, 0.1),
        "gpus_per_trial": min(int(WANTED["gpus_per_trial"]), cap.gpus),
    }
    note = (
        f"per-trial resources fit partition {cap.partition!r} (largest node: {cap.cpus} CPUs, "
        f"{cap.mem_gb:.1f} GB, {cap.gpus} GPUs): cpus_per_trial = {fitted['cpus_per_trial']}, "
        f"mem_gb = {fitted['mem_gb']:g}, gpus_per_trial = {fitted['gpus_per_trial']}"
    )
    return fitted, note
