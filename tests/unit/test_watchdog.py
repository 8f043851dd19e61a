"""The watchdog's pure parts (what a tick decides from a campaign and the scheduler's view) and the
crontab/scrontab entry, installed through a stand-in `crontab` executable on PATH."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest

from rea_cli.app.watchdog import decide, jobs_to_query, stuck_notes
from rea_cli.budget import measured_spend_hours
from rea_cli.campaign.model import Budget, Campaign, JobRecord, PhaseRecord, Round, TrialRecord
from rea_cli.campaign.state import CampaignState
from rea_cli.config import SlurmSettings
from rea_cli.cron import cron_block, merge_block, schedule, strip_block
from rea_cli.errors import UsageError
from rea_cli.executor.scheduler import JobInfo, JobState
from tests.conftest import make_workspace, run_rea

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _campaign(
    *,
    status: Literal["submitting", "released"] = "released",
    wakeup: str | None = "9",
    job_state: str = "RUNNING",
    approved: float = 4.0,
) -> Campaign:
    c = Campaign(
        schema=1,
        campaign_id="c1",
        created_at="t",
        created_by="me",
        state=CampaignState.RUNNING,
        phase="validation",
        model_family="dcn_v2",
        dataset="synthetic",
        metric="auc",
        direction="max",
        backend="local",
        plan_hash="h",
        budget=Budget(approved_gpu_hours=approved),
    )
    c.phases["validation"] = PhaseRecord(
        status="submitted",
        rounds=[
            Round(
                round=1,
                trial_ids=["a", "b"],
                status=status,
                array_job_ids=["1_0", "1_1"],
                wakeup_job_id=wakeup,
            )
        ],
    )
    for tid, jid in (("a", "1_0"), ("b", "1_1")):
        c.trials[tid] = TrialRecord(
            phase="validation",
            hypothesis_id="baseline",
            seed=0,
            status="submitted",
            jobs=[JobRecord(job_id=jid, round=1, state=job_state, gpus=1, time_limit_min=30)],
        )
    return c


def _info(jid: str, state: JobState, **kw: object) -> JobInfo:
    return JobInfo(job_id=jid, name="rea.c1.validation.r1", state=state, **kw)  # type: ignore[arg-type]


def _running(started_min_ago: float = 10) -> dict[str, JobInfo]:
    start = NOW - timedelta(minutes=started_min_ago)
    return {j: _info(j, JobState.RUNNING, started_at=start) for j in ("1_0", "1_1")}


# ---------------------------------------------------------------- decide


def test_healthy_campaign_needs_nothing() -> None:
    c = _campaign()
    infos = {**_running(), "9": _info("9", JobState.PENDING, reason="Dependency")}
    d = decide(c, infos, NOW)
    assert d.action == "none" and d.reason == "wake-up 9 is PENDING" and d.stuck == []
    assert jobs_to_query(c) == ["1_0", "1_1", "9"]


@pytest.mark.parametrize(
    "state",
    [JobState.CANCELLED, JobState.FAILED, JobState.COMPLETED, JobState.UNKNOWN, JobState.TIMEOUT],
)
def test_a_wakeup_that_is_gone_means_resume(state: JobState) -> None:
    infos = {**_running(), "9": _info("9", state)}
    d = decide(_campaign(), infos, NOW)
    assert d.action == "resume"
    assert d.reason == f"wake-up 9 of validation round 1 is {state.value}"


def test_a_wakeup_the_scheduler_does_not_report_means_resume() -> None:
    d = decide(_campaign(job_state="COMPLETED"), {}, NOW)
    assert (d.action, d.reason) == ("resume", "wake-up 9 of validation round 1 is UNKNOWN")


def test_no_wakeup_or_an_interrupted_submission_means_resume() -> None:
    assert decide(_campaign(wakeup=None), _running(), NOW).reason == (
        "validation round 1 has no wake-up job"
    )
    d = decide(_campaign(status="submitting"), _running(), NOW)
    assert (d.action, d.reason) == (
        "resume",
        "validation round 1 was not fully submitted (submitting)",
    )
    c = _campaign()
    c.phases.clear()
    assert decide(c, {}, NOW).reason == "no round recorded (launch interrupted)"


def test_spend_over_the_approved_budget_means_pause() -> None:
    # two trials running for 90 min on 1 GPU each = 3 GPU-h measured, 2 approved
    c = _campaign(approved=2.0)
    infos = {**_running(started_min_ago=90), "9": _info("9", JobState.PENDING)}
    assert measured_spend_hours(c, infos, NOW) == pytest.approx(3.0)
    d = decide(c, infos, NOW)
    assert d.action == "pause"
    assert d.reason == "measured spend 3.000 GPU-h exceeds the approved 2.000 GPU-h"


def test_spend_prefers_scheduler_elapsed_and_gpus_then_records() -> None:
    c = _campaign()
    c.trials["a"].jobs.insert(0, JobRecord(job_id="0_0", round=0, state="FAILED", gpu_seconds=3600))
    infos = {"1_0": _info("1_0", JobState.RUNNING, elapsed_s=1800.0, gpus=2)}
    # ended job: 1 h from its record; 1_0: 0.5 h x 2 GPUs; 1_1: not started per the scheduler
    assert measured_spend_hours(c, infos, NOW) == pytest.approx(2.0)


# ---------------------------------------------------------------- stuck


def test_stuck_wakeup_and_trials_are_reported() -> None:
    c = _campaign(job_state="PENDING")
    old = NOW - timedelta(hours=3)
    infos = {
        "1_0": _info("1_0", JobState.PENDING, submitted_at=old, reason="Resources"),
        "1_1": _info(
            "1_1", JobState.PENDING, submitted_at=NOW - timedelta(minutes=5), reason="Priority"
        ),
        "9": _info("9", JobState.PENDING, reason="DependencyNeverSatisfied"),
    }
    notes = stuck_notes(c, infos, NOW)
    assert notes == [
        "wake-up 9 is PENDING (DependencyNeverSatisfied) and will not start; cancel it "
        "(the next tick resumes the campaign)",
        "trial job 1_0 pending for 180 min (time limit 30 min, reason Resources)",
    ]
    assert decide(c, infos, NOW).action == "none"  # reported, not acted on


def test_a_held_trial_in_a_released_round_is_reported() -> None:
    c = _campaign(job_state="HELD")
    infos = {"1_0": _info("1_0", JobState.HELD), "9": _info("9", JobState.PENDING)}
    assert stuck_notes(c, infos, NOW) == [
        "trial job 1_0 is still held although its round was released"
    ]


# ---------------------------------------------------------------- cron entry


def test_schedule_fields() -> None:
    assert schedule(5) == "*/5 * * * *"
    assert schedule(1) == "* * * * *"
    assert schedule(60) == "0 * * * *"
    for bad in (0, 61, -5):
        with pytest.raises(
            UsageError, match=f"--every {bad}: use a number of minutes from 1 to 60"
        ):
            schedule(bad)


def test_crontab_block_text() -> None:
    block = cron_block(Path("/ws"), "/venv/bin/python", 5, "crontab", None, "/usr/bin:/bin")
    assert block == (
        "# >>> rea tick /ws >>>\n"
        "# installed by `rea cron install`; remove with `rea cron remove --apply`\n"
        "*/5 * * * * PATH=/usr/bin:/bin /venv/bin/python -m rea_cli --workspace /ws tick "
        ">> /ws/.rea/tick.log 2>&1\n"
        "# <<< rea tick /ws <<<\n"
    )


def test_scrontab_block_has_job_options_and_quotes_paths() -> None:
    slurm = SlurmSettings.model_validate({"partition": "gpu", "account": "proj"})
    block = cron_block(Path("/my ws/100%"), "/py", 10, "scrontab", slurm)
    lines = block.splitlines()
    assert lines[2:8] == [
        "#SCRON --job-name=rea-tick",
        "#SCRON --time=10",
        "#SCRON --cpus-per-task=1",
        "#SCRON --output=/dev/null",
        "#SCRON --partition=gpu",
        "#SCRON --account=proj",
    ]
    # quoted for the shell, % escaped for cron
    assert lines[8] == (
        "*/10 * * * * /py -m rea_cli --workspace '/my ws/100\\%' tick "
        ">> '/my ws/100\\%/.rea/tick.log' 2>&1"
    )


def test_merge_and_strip_keep_other_entries_and_are_idempotent() -> None:
    mine = cron_block(Path("/ws"), "/py", 5)
    other = cron_block(Path("/other"), "/py", 5)
    table = "MAILTO=me\n0 1 * * * backup"  # no trailing newline
    once = merge_block(table, Path("/ws"), mine)
    assert once == "MAILTO=me\n0 1 * * * backup\n" + mine
    assert merge_block(once, Path("/ws"), mine) == once
    both = merge_block(once, Path("/other"), other)
    changed = merge_block(both, Path("/ws"), cron_block(Path("/ws"), "/py", 7))
    assert changed.count("rea tick /ws >>>") == 1 and "*/7 * * * *" in changed
    assert other in changed
    assert strip_block(both, Path("/ws")) == "MAILTO=me\n0 1 * * * backup\n" + other
    assert strip_block(table, Path("/ws")) == table


# ---------------------------------------------------------------- cron install --apply


def _fake_crontab(bin_dir: Path, table: Path) -> None:
    """A stand-in `crontab` with the real one's interface: -l lists, FILE installs."""
    bin_dir.mkdir()
    script = bin_dir / "crontab"
    script.write_text(
        "#!/bin/sh\n"
        f'T="{table}"\n'
        'if [ "$1" = "-l" ]; then\n'
        '  [ -f "$T" ] || { echo "no crontab for $(id -un)" >&2; exit 1; }\n'
        '  cat "$T"; exit 0\n'
        "fi\n"
        'cp "$1" "$T"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_cron_install_apply_is_idempotent_and_remove_keeps_the_rest(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    table = tmp_path / "table"
    _fake_crontab(tmp_path / "bin", table)
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}

    printed = run_rea(ws, "cron", "install", "--every", "3", env=env)
    assert printed.returncode == 0, printed.stderr
    assert f"*/3 * * * * PATH={tmp_path / 'bin'}:" in printed.stdout
    assert not table.exists()  # printing changes nothing

    first = run_rea(ws, "cron", "install", "--every", "3", "--apply", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("installed in your crontab: rea tick every 3 min")
    installed = table.read_text()
    assert f"--workspace {ws} tick >> {ws}/.rea/tick.log 2>&1" in installed

    table.write_text("0 1 * * * backup\n" + installed)
    again = run_rea(ws, "cron", "install", "--every", "3", "--apply", env=env)
    assert again.returncode == 0 and again.stdout.startswith("already installed")
    assert table.read_text() == "0 1 * * * backup\n" + installed

    removed = run_rea(ws, "cron", "remove", "--apply", env=env)
    assert removed.returncode == 0 and "removed from your crontab" in removed.stdout
    assert table.read_text() == "0 1 * * * backup\n"


def test_cron_apply_without_the_tool_is_one_clear_line(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_rea(ws, "cron", "install", "--scrontab", "--apply", env={"PATH": str(empty)})
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: `scrontab` is not installed on this machine; try --crontab, or print the entry "
        "without --apply and install it by hand"
    )
    bad = run_rea(ws, "cron", "install", "--every", "0")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: --every 0: use a number of minutes from 1 to 60"
