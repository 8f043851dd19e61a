"""Resources -> sbatch options, and the helpers that shape submissions (chunks, ids)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from submitit.slurm.slurm import _make_sbatch_string

from rea_cli.errors import UsageError
from rea_cli.executor.scheduler import Resources
from rea_cli.executor.slurm.options import (
    check_time_limit,
    extra_options,
    format_mem,
    option_lines,
    sbatch_options,
    submitit_parameters,
)
from rea_cli.executor.slurm.scheduler import (
    compress_ids,
    dependency_args,
    split_chunks,
    unique_bases,
)

FULL = Resources(
    time_limit_min=90,
    gpus_per_task=2,
    cpus_per_task=8,
    mem_gb=32.0,
    partition="gpu",
    account="proj",
    qos="high",
    constraint="a100",
    extra_sbatch={"exclusive": "", "mail_type": "FAIL"},
    setup=("module load cuda/12.4",),
)


def test_sbatch_options_full() -> None:
    assert option_lines(sbatch_options(FULL)) == [
        "--account=proj",
        "--constraint=a100",
        "--cpus-per-task=8",
        "--exclusive",
        "--gres=gpu:2",
        "--mail-type=FAIL",
        "--mem=32G",
        "--partition=gpu",
        "--qos=high",
        "--time=90",
    ]


def test_sbatch_options_minimal_and_extra_wins() -> None:
    assert option_lines(sbatch_options(Resources(time_limit_min=5))) == [
        "--cpus-per-task=1",
        "--time=5",
    ]
    typed = Resources(gpus_per_task=1, extra_sbatch={"gres": "gpu:a100:1"})
    assert sbatch_options(typed)["gres"] == "gpu:a100:1"


@pytest.mark.parametrize("bad", [0, -5, 0.0, -0.5, math.nan, math.inf, "60", True, None])
def test_invalid_time_limit_is_one_clear_line(bad: object) -> None:
    with pytest.raises(UsageError) as error:
        check_time_limit(bad)
    message = str(error.value)
    assert "\n" not in message and "time_limit_min" in message


@pytest.mark.parametrize(
    ("minutes", "sent"), [(1, 1), (60, 60), (1.5, 2), (0.25, 1), (0.02, 1), (59.0001, 60)]
)
def test_fractional_time_limits_are_rounded_up_never_down(minutes: float, sent: int) -> None:
    assert check_time_limit(minutes) == sent
    assert sbatch_options(Resources(time_limit_min=minutes))["time"] == str(sent)
    params = submitit_parameters(
        Resources(time_limit_min=minutes),
        job_name="n",
        comment="c",
        parallelism=1,
        setup=[],
        hold=False,
    )
    assert params["time"] == sent


def test_mem_and_extra_formatting() -> None:
    assert format_mem(16) == "16G"
    assert format_mem(0.5) == "512M"
    assert extra_options({"--exclusive": "", "gpus_per_task": "1"}) == {
        "exclusive": True,
        "gpus-per-task": "1",
    }


def test_array_sbatch_text_from_submitit(tmp_path: Path) -> None:
    """What submitit writes for an array with these parameters (held, throttled, GPUs)."""
    params = submitit_parameters(
        FULL,
        job_name="rea.c1.validation.r1",
        comment="rea.c1.validation.r1/abc",
        parallelism=4,
        setup=["source /venv/bin/activate", *FULL.setup],
        hold=True,
        workdir="/shared/ws/phases/validation dir",
    )
    text = _make_sbatch_string(command="python -m x", folder=tmp_path, map_count=10, **params)
    lines = text.splitlines()

    for expected in [
        "#SBATCH --array=0-9%4",
        "#SBATCH --job-name=rea.c1.validation.r1",
        "#SBATCH --comment=rea.c1.validation.r1/abc",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32G",
        "#SBATCH --time=90",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=proj",
        "#SBATCH --qos=high",
        "#SBATCH --constraint=a100",
        "#SBATCH --exclusive",
        "#SBATCH --mail-type=FAIL",
        "#SBATCH --hold",
        "#SBATCH --chdir='/shared/ws/phases/validation dir'",
        "#SBATCH --signal=USR2@90",
        "source /venv/bin/activate",
        "module load cuda/12.4",
    ]:
        assert expected in lines, (expected, text)
    assert not any("wckey" in line for line in lines)
    assert lines.index("source /venv/bin/activate") < lines.index("module load cuda/12.4")


def test_short_limits_get_an_early_enough_signal() -> None:
    params = submitit_parameters(
        Resources(time_limit_min=1),
        job_name="n",
        comment="c",
        parallelism=1,
        setup=[],
        hold=False,
    )
    assert params["signal_delay_s"] == 15
    assert "additional_parameters" not in params


def test_split_chunks() -> None:
    assert split_chunks(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert split_chunks(3, 1001) == [(0, 3)]
    assert split_chunks(2000, 1001) == [(0, 1001), (1001, 2000)]


def test_ids_helpers() -> None:
    assert unique_bases(["7_0", "7_1", "9", "8_3", "7_2"]) == ["7", "9", "8"]
    assert dependency_args(["7", "9"]) == ["--dependency=afterany:7:9"]
    assert dependency_args([]) == []
    assert compress_ids(["7_0", "7_1", "7_2", "7_5", "9", "7_6"]) == ["7_[0-2,5-6]", "9"]
    assert compress_ids(["7_3"]) == ["7_[3]"]
