"""What a phase submission would send to Slurm, rendered without submitting (dry run)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from rea_cli.executor.scheduler import Resources, TaskSpec
from rea_cli.executor.slurm.options import option_lines, sbatch_options
from rea_cli.executor.slurm.scheduler import DEFAULT_WAKEUP_RESOURCES
from rea_cli.executor.slurm.wakeup import render_wakeup_script


def preview(
    tasks: Sequence[TaskSpec],
    *,
    job_name: str,
    resources: Resources,
    parallelism: int,
    wakeup_name: str,
    wakeup_argv: Sequence[str],
    log_dir: Path,
    preamble: str = "",
) -> list[tuple[str, str]]:
    """(title, text) pairs: the array's sbatch command and the wake-up job script."""
    n = len(tasks)
    array_opts = [
        f"--array=0-{n - 1}%{max(1, parallelism)}",
        f"--job-name={job_name}",
        "--hold",
        *(f"--{k}" if v is True else f"--{k}={v}" for k, v in sbatch_options(resources).items()),
    ]
    setup = "".join(f"\n  setup: {line}" for line in resources.setup)
    array = f"sbatch {shlex.join(array_opts)}  (through submitit; one task per trial){setup}"
    wake_res = replace(
        DEFAULT_WAKEUP_RESOURCES,
        partition=resources.partition,
        account=resources.account,
        qos=resources.qos,
        setup=tuple(resources.setup),
    )
    script = render_wakeup_script(
        job_name=wakeup_name,
        comment=f"{wakeup_name}/<unique>",
        log_dir=log_dir,
        argv=wakeup_argv,
        options=option_lines(sbatch_options(wake_res)),
        preamble=preamble,
        setup=wake_res.setup,
    )
    return [
        ("array job", array),
        (
            "wake-up job (sbatch --dependency=afterany:<array>, then scontrol release <array>)",
            script,
        ),
    ]
