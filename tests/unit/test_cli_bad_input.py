"""Bad input gets one clear line on stderr, exit 2 (usage) or 1 (refused), no traceback, and
leaves nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_rea


def _one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture
def planned(workspace: Path) -> Path:
    done = run_rea(
        workspace,
        "plan",
        "--model",
        "dcn_v2",
        "--dataset",
        "synthetic",
        "--budget",
        "2gpu-h",
        "--profile",
        "tiny",
        "--id",
        "p1",
    )
    assert done.returncode == 0, done.stderr
    return workspace


def test_missing_workspace(tmp_path: Path) -> None:
    done = run_rea(tmp_path / "nowhere", "status")
    assert done.returncode == 2
    assert "rea init" in _one_line_error(done.stderr)


def test_no_workspace_found_from_cwd(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "REA_WORKSPACE"}
    done = subprocess.run(
        [sys.executable, "-m", "rea_cli", "status"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "no rea workspace" in _one_line_error(done.stderr)


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('backend = "local"\n[local]\nmax_paralel = 2\n', "unknown key [local].max_paralel"),
        ('backend = "local"\n[local]\nmax_parallel = "two"\n', "[local].max_parallel"),
        ('backend = "k8s"\n', "backend"),
        ("backend = \n", "not valid TOML"),
    ],
)
def test_invalid_rea_toml(workspace: Path, toml: str, needle: str) -> None:
    (workspace / "rea.toml").write_text(toml)
    done = run_rea(workspace, "status")
    assert done.returncode == 2
    assert needle in _one_line_error(done.stderr)


def test_unknown_campaign(workspace: Path) -> None:
    done = run_rea(workspace, "approve", "nope", "--yes")
    assert done.returncode == 2
    assert "unknown campaign 'nope'" in _one_line_error(done.stderr)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "resnet", "--dataset", "synthetic", "--budget", "1gpu-h"], "unknown model"),
        (["--model", "dcn_v2", "--dataset", "imagenet", "--budget", "1gpu-h"], "unknown dataset"),
        (["--model", "dcn_v2", "--dataset", "synthetic", "--budget", "lots"], "invalid budget"),
        (["--model", "dcn_v2", "--dataset", "synthetic", "--budget", "0.001gpu-h"], "too small"),
        (
            ["--model", "dcn_v2", "--dataset", "synthetic", "--budget", "1gpu-h", "--id", "a/b"],
            "invalid campaign id",
        ),
    ],
)
def test_bad_plan_arguments(workspace: Path, args: list[str], needle: str) -> None:
    done = run_rea(workspace, "plan", *args, "--profile", "tiny")
    assert done.returncode == 2
    assert needle in _one_line_error(done.stderr)
    assert not any((workspace / "campaigns").iterdir())  # nothing half-written


def test_launch_unapproved_is_refused(planned: Path) -> None:
    done = run_rea(planned, "launch", "p1")
    assert done.returncode == 1
    assert "rea approve p1" in _one_line_error(done.stderr)
    doc = json.loads((planned / "campaigns/p1/campaign.json").read_text())
    assert doc["state"] == "PLANNED" and not doc["trials"]


def test_approve_twice_is_refused(planned: Path) -> None:
    assert run_rea(planned, "approve", "p1", "--yes").returncode == 0
    done = run_rea(planned, "approve", "p1", "--yes")
    assert done.returncode == 1
    assert "only a PLANNED campaign" in _one_line_error(done.stderr)


def test_plan_edited_after_approval_is_refused(planned: Path) -> None:
    assert run_rea(planned, "approve", "p1", "--yes").returncode == 0
    plan_path = planned / "campaigns/p1/plan.json"
    plan = json.loads(plan_path.read_text())
    plan["budget_gpu_hours"] = 999
    plan_path.write_text(json.dumps(plan))
    done = run_rea(planned, "launch", "p1")
    assert done.returncode == 1
    assert "edited after approval" in _one_line_error(done.stderr)
    doc = json.loads((planned / "campaigns/p1/campaign.json").read_text())
    assert doc["state"] == "APPROVED" and not doc["trials"]


def test_plan_edited_before_approval_is_refused(planned: Path) -> None:
    plan_path = planned / "campaigns/p1/plan.json"
    plan_path.write_text(plan_path.read_text().replace('"tiny"', '"standard"'))
    done = run_rea(planned, "approve", "p1", "--yes")
    assert done.returncode == 1
    assert "changed since `rea plan`" in _one_line_error(done.stderr)


def test_review_before_proposal_is_refused(planned: Path) -> None:
    done = run_rea(planned, "review", "p1", "--accept")
    assert done.returncode == 1
    assert "AWAITING_REVIEW" in _one_line_error(done.stderr)


def test_review_needs_exactly_one_decision(planned: Path) -> None:
    done = run_rea(planned, "review", "p1")
    assert done.returncode == 2
    assert "--accept or --reject" in _one_line_error(done.stderr)


def test_corrupt_campaign_file(planned: Path) -> None:
    (planned / "campaigns/p1/campaign.json").write_text("{not json")
    done = run_rea(planned, "status", "p1")
    assert done.returncode == 2
    assert "corrupt" in _one_line_error(done.stderr)


def test_dry_run_submits_nothing(planned: Path) -> None:
    assert run_rea(planned, "approve", "p1", "--yes").returncode == 0
    done = run_rea(planned, "launch", "p1", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "ranking_models.train" in done.stdout and "nothing was submitted" in done.stdout
    doc = json.loads((planned / "campaigns/p1/campaign.json").read_text())
    assert doc["state"] == "APPROVED" and not doc["trials"]
    assert not (planned / ".rea" / "local" / "jobs").exists() or not any(
        (planned / ".rea" / "local" / "jobs").iterdir()
    )


def test_version_and_help_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from typer.testing import CliRunner; from rea_cli.cli.main import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_status_does_not_import_torch(planned: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from typer.testing import CliRunner; from rea_cli.cli.main import app; "
        f"r = CliRunner().invoke(app, ['--workspace', {str(planned)!r}, 'status', 'p1']); "
        "assert r.exit_code == 0, r.output; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_listing_survives_one_corrupt_campaign(planned: Path) -> None:
    assert (
        run_rea(
            planned,
            "plan",
            "--model",
            "lr",
            "--dataset",
            "synthetic",
            "--budget",
            "2gpu-h",
            "--profile",
            "tiny",
            "--id",
            "p2",
        ).returncode
        == 0
    )
    (planned / "campaigns/p2/campaign.json").write_text("{torn")
    done = run_rea(planned, "status", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["campaign_id"]: r for r in json.loads(done.stdout)}
    assert rows["p1"]["state"] == "PLANNED"
    assert rows["p2"]["state"] == "UNREADABLE" and "corrupt" in rows["p2"]["error"]
