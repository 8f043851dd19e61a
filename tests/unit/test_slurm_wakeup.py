"""The rendered wake-up sbatch script, pinned by a golden file."""

from __future__ import annotations

import os
from pathlib import Path

from rea_cli.executor.slurm.wakeup import render_wakeup_script

GOLDEN = Path(__file__).parent.parent / "fixtures" / "slurm" / "wakeup.golden.sbatch"


def render() -> str:
    return render_wakeup_script(
        job_name="rea.c20261122-ab12.validation.r1.wake",
        comment="rea.c20261122-ab12.validation.r1.wake/0123456789ab",
        log_dir=Path("/shared/ws/campaigns/c20261122-ab12/phases/validation"),
        workdir=Path("/shared/ws/campaigns/c20261122-ab12/phases/validation/logs"),
        argv=["/shared/venv/bin/python", "-m", "rea_cli", "resume", "c20261122-ab12"],
        options=["--account=proj", "--cpus-per-task=1", "--partition=cpu", "--time=30"],
        preamble="# site preamble\nmodule load python/3.11\n",
        setup=["source /shared/venv/bin/activate", "export OMP_NUM_THREADS=1"],
    )


def test_wakeup_script_matches_golden_file() -> None:
    text = render()
    if os.environ.get("REA_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), (
        "the wake-up sbatch script changed; if intended, regenerate the golden file with\n"
        "  REA_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_slurm_wakeup.py\n"
        "and review `git diff tests/fixtures/slurm/wakeup.golden.sbatch`"
    )


def test_wakeup_without_preamble_or_setup_and_with_odd_paths() -> None:
    text = render_wakeup_script(
        job_name="n",
        comment="n/x",
        log_dir=Path("/a b"),
        workdir=Path("/w d"),
        argv=["echo", "it's"],
    )

    assert "preamble" not in text and "setup lines" not in text
    assert "#SBATCH --output='/a b/n-%j.out'" in text
    assert "#SBATCH --chdir='/w d'" in text and "--chdir='/a b'" not in text
    assert text.rstrip().endswith("exec echo 'it'\"'\"'s'")
    assert "#SBATCH --dependency" not in text  # given on the sbatch command line instead
