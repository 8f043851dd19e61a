"""Resources -> sbatch options. Pure: the same mapping feeds submitit (arrays) and the
wake-up template (plain sbatch), so a setting in rea.toml means the same thing for both."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rea_cli.errors import UsageError
from rea_cli.executor.scheduler import Resources


def check_time_limit(minutes: object) -> int:
    """A time limit must be a positive number of minutes; Slurm gets whole minutes (rounded up:
    sbatch --time=<minutes>), so a fractional limit never shortens a task."""
    if (
        isinstance(minutes, bool)
        or not isinstance(minutes, int | float)
        or not math.isfinite(minutes)
        or minutes <= 0
    ):
        raise UsageError(
            f"invalid Slurm time limit {minutes!r}: set [slurm] time_limit_min in rea.toml "
            "to a positive number of minutes"
        )
    return max(1, math.ceil(minutes))


def format_mem(mem_gb: float) -> str:
    """16 -> "16G"; 0.5 -> "512M" (what sbatch --mem accepts)."""
    if mem_gb == int(mem_gb):
        return f"{int(mem_gb)}G"
    return f"{round(mem_gb * 1024)}M"


def sbatch_options(resources: Resources) -> dict[str, str | bool]:
    """Long sbatch option name (without --) -> value; True means a flag without value.

    GPUs are requested as --gres=gpu:N (understood by every Slurm version since 2.x);
    a site that wants a GPU type or --gpus-per-task sets it in extra_sbatch, which wins.
    """
    options: dict[str, str | bool] = {
        "time": str(check_time_limit(resources.time_limit_min)),
        "cpus-per-task": str(resources.cpus_per_task),
    }
    if resources.gpus_per_task:
        options["gres"] = f"gpu:{resources.gpus_per_task}"
    if resources.mem_gb is not None:
        options["mem"] = format_mem(resources.mem_gb)
    for key in ("partition", "account", "qos", "constraint"):
        value = getattr(resources, key)
        if value:
            options[key] = str(value)
    options.update(extra_options(resources.extra_sbatch))
    return options


def extra_options(extra: Mapping[str, str]) -> dict[str, str | bool]:
    """extra_sbatch from rea.toml: {"exclusive": ""} -> --exclusive; keys with _ or -."""
    out: dict[str, str | bool] = {}
    for key, value in extra.items():
        name = key.strip().lstrip("-").replace("_", "-")
        out[name] = True if value in ("", None) else str(value)
    return out


def option_lines(options: Mapping[str, str | bool]) -> list[str]:
    """{"time": "60", "exclusive": True} -> ["--exclusive", "--time=60"] (sorted, stable)."""
    return [f"--{k}" if v is True else f"--{k}={v}" for k, v in sorted(options.items())]


def submitit_parameters(
    resources: Resources,
    *,
    job_name: str,
    comment: str,
    parallelism: int,
    setup: Sequence[str],
    hold: bool,
    workdir: str | None = None,
) -> dict[str, Any]:
    """Parameters for submitit's SlurmExecutor.update_parameters (its own names where it has
    one, `additional_parameters` for the rest, which submitit writes as #SBATCH lines)."""
    options = sbatch_options(resources)
    time_limit = int(str(options.pop("time")))
    params: dict[str, Any] = {
        "job_name": job_name,
        "comment": comment,
        "time": time_limit,
        "cpus_per_task": int(str(options.pop("cpus-per-task"))),
        "array_parallelism": max(1, parallelism),
        # USR2 before the limit lets submitit requeue on preemption; keep it inside short limits
        "signal_delay_s": min(90, max(5, time_limit * 60 // 4)),
        "setup": list(setup),
        "wckey": None,  # submitit's default wckey "submitit" is refused where wckeys are enforced
        "stderr_to_stdout": False,
    }
    additional: dict[str, Any] = {}
    for key, value in options.items():
        # mem stays in additional_parameters: submitit would re-convert it as a float of GB
        if key in {"partition", "account", "qos", "constraint", "gres"}:
            params[key] = value
        else:
            additional[key] = value
    if hold:
        additional["hold"] = True
    if workdir:
        # where the job starts: explicit, never the submitting process's current directory
        additional["chdir"] = workdir
    if additional:
        params["additional_parameters"] = additional
    return params
