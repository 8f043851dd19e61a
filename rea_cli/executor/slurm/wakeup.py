"""Render the wake-up job script from sbatch_templates/wakeup.sbatch.j2 (pure)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

import jinja2

from rea_cli.paths import shipped_dir

TEMPLATE_NAME = "wakeup.sbatch.j2"


def _environment(template_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # a shell script, not HTML
    )
    env.filters["q"] = shlex.quote
    return env


def render_wakeup_script(
    *,
    job_name: str,
    comment: str,
    log_dir: Path,
    workdir: Path,
    argv: Sequence[str],
    options: Sequence[str] = (),
    preamble: str = "",
    setup: Sequence[str] = (),
    template_dir: Path | None = None,
) -> str:
    """The wake-up sbatch script: #SBATCH options, site preamble, setup lines, `exec argv`.

    The dependency is not in the script: it is given on the sbatch command line, so the same
    script can be resubmitted with a shorter dependency list when some jobs were purged.
    """
    template = _environment(template_dir or shipped_dir("sbatch_templates")).get_template(
        TEMPLATE_NAME
    )
    return template.render(
        job_name=job_name,
        comment=comment,
        log_dir=str(log_dir),
        workdir=str(workdir),
        options=list(options),
        preamble=preamble.strip("\n"),
        setup=list(setup),
        command=shlex.join(str(a) for a in argv),
    )
