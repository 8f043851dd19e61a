"""The terminal: 80-column output, help, completion, budgets without a unit, review --force,
figures with enough digits, the dry run as data, `rea doctor`, --json on every listing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from rich.console import Console
from typer.testing import CliRunner

from rea_cli import numfmt
from rea_cli.app.doctor import fit_check, fs_type, parse_sinfo_nodes
from rea_cli.campaign.model import Proposal
from rea_cli.campaign.state import CampaignState
from rea_cli.campaign.store import CampaignStore
from rea_cli.cli import tables
from rea_cli.cli.main import app
from rea_cli.workspace import Workspace
from tests.conftest import run_rea

EFFECT_COLUMNS = [
    "model_family", "dataset", "metric", "direction", "hypothesis_id", "delta", "source",
    "strategy", "n", "n_campaigns", "baseline_mean", "candidate_mean", "mean_gain", "sd_gain",
    "mean_rel_gain", "ci_low",
]  # fmt: skip
LONG_ID = "numeric_buckets_replace@64-and-a-long-tail-xyz"


def _commands() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []

    def walk(prefix: str, cmd: Any) -> None:
        if getattr(cmd, "commands", None):
            for name, sub in cmd.commands.items():
                walk(f"{prefix} {name}".strip(), sub)
        else:
            found.append((prefix, cmd))

    walk("", typer.main.get_command(app))
    return found


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


# ---------------------------------------------------------------- 80 columns


def _effect_row(i: int) -> dict[str, Any]:
    return {
        "model_family": "dcn_v2", "dataset": "movielens-100k", "metric": "auc",
        "direction": "max", "hypothesis_id": f"{LONG_ID}{i}",
        "delta": '{"features.numeric_buckets":64,"features.numeric_bucket_mode":"replace"}',
        "source": "research_kb", "strategy": "numeric_buckets_replace", "n": 5,
        "n_campaigns": 2, "baseline_mean": 0.78123, "candidate_mean": 0.78567,
        "mean_gain": 0.00444, "sd_gain": 0.001, "mean_rel_gain": 0.0057, "ci_low": 0.0031,
    }  # fmt: skip


def test_wide_tables_switch_to_a_vertical_layout_at_80_columns() -> None:
    console = Console(width=80, record=True, force_terminal=False)
    rows = [_effect_row(i) for i in range(3)]
    tables.print_rows(console, rows, EFFECT_COLUMNS, caption="3 rows")
    out = _lines(console.export_text())
    assert max(len(line) for line in out) <= 80
    text = "\n".join(out)
    for i in range(3):
        assert f"{LONG_ID}{i}" in text  # ids whole, on one line
    for column in EFFECT_COLUMNS:  # every column by its full name: none squeezed to a letter
        assert re.search(rf"^{column}\s+\| ", text, re.M), column


def test_narrow_tables_stay_tables_with_whole_ids() -> None:
    console = Console(width=80, record=True)
    rows = [{"campaign_id": "weekly-202612010000", "state": "AWAITING_REVIEW"}]
    tables.print_rows(console, rows, ["campaign_id", "state"])
    out = console.export_text()
    assert "weekly-202612010000" in out and "AWAITING_REVIEW" in out and "| " not in out


@pytest.mark.slow
def test_insights_sql_reads_at_80_columns(workspace: Path) -> None:
    select = ", ".join(f"'{v}' AS {k}" for k, v in _effect_row(0).items())
    done = run_rea(workspace, "insights", "sql", f"SELECT {select}", env={"COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    out = _lines(done.stdout)
    assert max(len(line) for line in out) <= 80, done.stdout
    assert f"{LONG_ID}0" in done.stdout
    csv = run_rea(workspace, "insights", "sql", f"SELECT {select}", "--format", "csv")
    header = csv.stdout.splitlines()[0].replace('"', "").split(",")
    assert header == list(_effect_row(0))  # --format csv stays


@pytest.mark.slow
def test_plan_and_status_fit_80_columns(planned: Path) -> None:
    for args in (("status",), ("status", "p1"), ("schedule", "list"), ("report", "p1")):
        done = run_rea(planned, *args, env={"COLUMNS": "80"})
        assert done.returncode == 0, done.stderr
        # a longer line is one word alone (a path is printed whole, to be copied)
        wide = [x for x in _lines(done.stdout) if len(x) > 80 and len(x.split()) > 1]
        assert not wide, done.stdout
        assert "<bool>" not in done.stdout


# ---------------------------------------------------------------- figures


def test_a_small_interval_is_printed_with_enough_digits() -> None:
    text = numfmt.gain_with_ci(0.0012, 0.00004, 0.0023)
    assert text == "+0.001200 (95% CI +0.000040 .. +0.002300)"  # one precision for all three
    p = Proposal(
        hypothesis_id="h", delta={"train.lr_dense": 0.003}, metric="auc", direction="max",
        baseline_mean=0.78, candidate_mean=0.7812, gain=0.0012, ci_low=0.00004, ci_high=0.0023,
        n=5, test_gain=0.0009, test_ci_low=-0.00001, test_ci_high=0.0019, significant=True,
    )  # fmt: skip
    line = numfmt.proposal_line(p)
    assert line.endswith("significant")
    # no figure that reads as zero: every number has a non-zero digit
    for figure in re.findall(r"[+-]\d+\.\d+", line):
        assert re.search(r"[1-9]", figure), (figure, line)


# ---------------------------------------------------------------- help, completion


def test_help_shows_no_bool_and_v_as_a_counter() -> None:
    runner = CliRunner()
    root = runner.invoke(app, ["--help"], terminal_width=80)
    assert root.exit_code == 0
    assert "counter" in root.output and "<bool>" not in root.output
    assert "--install-completion" in root.output
    for name, _ in _commands():
        out = runner.invoke(app, [*name.split(), "--help"], terminal_width=80).output
        assert "<bool>" not in out, name


@pytest.mark.slow
def test_shell_completion_completes_commands() -> None:
    env = {
        **os.environ,
        "_REA_COMPLETE": "complete_bash",
        "COMP_WORDS": "rea sch",
        "COMP_CWORD": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "rea_cli"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "schedule" in done.stdout.split()
    script = run_rea(None, "--show-completion", "bash")
    assert script.returncode == 0 and "_rea_completion" in script.stdout


def test_every_listing_has_json() -> None:
    listings = {
        "plan", "launch", "status", "report", "tick", "doctor", "insights effects",
        "insights export", "schedule list", "schedule add", "schedule approve",
        "schedule pause", "schedule resume", "schedule remove",
    }  # fmt: skip
    commands = dict(_commands())
    for name in listings:
        opts = {o for p in commands[name].params for o in p.opts}
        assert "--json" in opts, f"rea {name} has no --json"
    sql = {o for p in commands["insights sql"].params for o in p.opts}
    assert "--format" in sql


@pytest.mark.slow
def test_help_and_status_load_no_heavy_library(planned: Path) -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from rea_cli.cli.main import app; "
        f"r = CliRunner().invoke(app, ['--workspace', {str(planned)!r}, 'status', 'p1']); "
        "h = CliRunner().invoke(app, ['--help']); assert r.exit_code == h.exit_code == 0; "
        "print(sorted(m for m in ('torch', 'matplotlib', 'croniter') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- budgets, review


@pytest.fixture
def planned(workspace: Path) -> Path:
    done = run_rea(
        workspace, "plan", "--model", "dcn_v2", "--dataset", "synthetic", "--budget", "2",
        "--profile", "tiny", "--id", "p1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # a budget without a unit: read as GPU-hours, saying so (no terminal to ask at)
    assert "--budget 2 has no unit: read as 2 GPU-hours" in done.stderr
    doc = json.loads((workspace / "campaigns" / "p1" / "campaign.json").read_text())
    assert doc["budget"]["approved_gpu_hours"] == 2.0
    return workspace


@pytest.mark.slow
def test_a_budget_with_a_unit_says_nothing_more(workspace: Path) -> None:
    done = run_rea(
        workspace, "plan", "--model", "dcn_v2", "--dataset", "synthetic", "--budget",
        "120gpu-min", "--profile", "tiny", "--id", "p2", "--json",
    )  # fmt: skip
    assert done.returncode == 0 and "no unit" not in done.stderr
    assert json.loads(done.stdout)["plan"]["budget_gpu_hours"] == 2.0


def _awaiting_review(ws: Path, test_gain: float) -> str:
    """p1 brought to AWAITING_REVIEW by the campaign store (the real writer) with a proposal
    of its top-ranked hypothesis."""
    store = CampaignStore(Workspace(ws), "p1")
    plan = json.loads(store.plan_path.read_text())
    hid = plan["ranking"][0]["hypothesis_id"]
    c = store.load()
    for state in (CampaignState.APPROVED, CampaignState.RUNNING):
        store.transition(c, state)
    c.proposal = Proposal(
        hypothesis_id=hid, delta=plan["hypotheses"][hid]["delta"], metric="auc",
        direction="max", baseline_mean=0.7, candidate_mean=0.71, gain=0.01, ci_low=0.004,
        ci_high=0.016, n=5, test_gain=test_gain, test_ci_low=test_gain - 0.01,
        test_ci_high=test_gain + 0.01, significant=True, candidate=hid, summary="s",
    )  # fmt: skip
    store.transition(c, CampaignState.AWAITING_REVIEW)
    return hid


@pytest.mark.slow
def test_accepting_a_change_that_loses_on_test_needs_force(planned: Path) -> None:
    hid = _awaiting_review(planned, test_gain=-0.002)
    refused = run_rea(planned, "review", "p1", "--accept")
    assert refused.returncode == 1
    assert "gain on the test split is negative (-0.002)" in refused.stderr
    assert "--force" in refused.stderr
    doc = json.loads((planned / "campaigns" / "p1" / "campaign.json").read_text())
    assert doc["state"] == "AWAITING_REVIEW"
    done = run_rea(planned, "review", "p1", "--accept", "--force", "--note", "checked")
    assert done.returncode == 0, done.stderr
    text = (planned / "campaigns" / "p1" / "accepted-config.json").read_text()
    assert text.startswith('{\n  "campaign_id": "p1",')  # indented for people
    assert json.loads(text)["hypothesis_id"] == hid
    events = (planned / "campaigns" / "p1" / "journal.jsonl").read_text().splitlines()
    assert "forced" in json.loads(events[-1])


@pytest.mark.slow
def test_accepting_a_confirmed_change_needs_no_force(planned: Path) -> None:
    _awaiting_review(planned, test_gain=0.003)
    done = run_rea(planned, "review", "p1", "--accept")
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- plan, approve, dry run


def _ranked(text: str) -> list[str]:
    return re.findall(r"^\s*\d+\. (\S+)\s+score", text, re.M)


@pytest.mark.slow
def test_plan_and_approve_list_hypotheses_in_the_same_order(workspace: Path) -> None:
    plan = run_rea(
        workspace, "plan", "--model", "dcn_v2", "--dataset", "synthetic", "--budget", "4gpu-h",
        "--profile", "tiny", "--id", "o1", env={"COLUMNS": "80"},
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    assert max(len(line) for line in _lines(plan.stdout)) <= 80, plan.stdout
    cmd = [sys.executable, "-m", "rea_cli", "--workspace", str(workspace), "approve", "o1"]
    env = {**os.environ, "COLUMNS": "200"}
    approve = subprocess.run(cmd, input="n\n", capture_output=True, text=True, env=env)
    assert approve.returncode == 1 and "not approved" in approve.stderr
    assert _ranked(plan.stdout) and _ranked(plan.stdout) == _ranked(approve.stdout)
    data = json.loads(run_rea(workspace, "plan", "--model", "dcn_v2", "--dataset", "synthetic",
                              "--budget", "4gpu-h", "--profile", "tiny", "--id", "o2",
                              "--json").stdout)  # fmt: skip
    ranked = [r["hypothesis_id"] for r in data["plan"]["ranking"]]
    assert ranked[: len(_ranked(plan.stdout))] == _ranked(plan.stdout)


@pytest.mark.slow
def test_dry_run_json_is_the_request(planned: Path) -> None:
    assert run_rea(planned, "approve", "p1", "--yes").returncode == 0
    done = run_rea(planned, "launch", "p1", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    d = json.loads(done.stdout)
    assert d["submitted"] is False and d["campaign_id"] == "p1"
    array = d["request"]["array"]
    assert array["job_name"].endswith("p1.validation.r1") and array["hold"] is True
    assert len(array["tasks"]) == 2 and "ranking_models.train" in array["tasks"][0]["argv"]
    assert d["request"]["wakeup"]["argv"][-2:] == ["resume", "p1"]
    assert d["reserved_gpu_hours"] > 0 and d["rendered"]
    doc = json.loads((planned / "campaigns" / "p1" / "campaign.json").read_text())
    assert doc["state"] == "APPROVED" and not doc["trials"]  # nothing submitted


# ---------------------------------------------------------------- doctor


@pytest.mark.slow
def test_doctor_checks_and_explains(workspace: Path) -> None:
    ok = run_rea(workspace, "doctor", "--dataset", "synthetic", "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    checks = {c["name"]: c for c in json.loads(ok.stdout)["checks"]}
    for name in ("workspace writable", "file locks", "insights DB", "disk space"):
        assert checks[name]["verdict"] == "OK", checks[name]
    assert checks["data set synthetic"]["verdict"] == "OK"
    assert checks["slurm reachable"]["verdict"] == "SKIP"  # a local workspace
    assert checks["rea tick entry"]["verdict"] in ("OK", "WARN")
    bad = run_rea(workspace, "doctor", "--dataset", "criteo:/no/such.tsv", env={"COLUMNS": "80"})
    assert bad.returncode == 1
    flat = " ".join(bad.stdout.split())  # lines wrap at 80 columns
    assert re.search(r"FAIL data set criteo:/no/such.tsv: [^\n]*not found", flat), flat
    assert "1 check(s) failed" in bad.stdout
    assert max(len(line) for line in _lines(bad.stdout)) <= 80


SINFO = "debug*|2|21694|gpu:2\ndebug*|2|21694|gpu:a100:2(S:0-1)\nbig|64|512000+|(null)\n"


def test_node_fit_from_sinfo() -> None:
    nodes = parse_sinfo_nodes(SINFO)
    assert [(n.partition, n.default, n.cpus, n.gpus) for n in nodes] == [
        ("debug", True, 2, 2), ("debug", True, 2, 2), ("big", False, 64, 0),
    ]  # fmt: skip
    assert fit_check(nodes, None, 1, 2.0, 1).verdict == "OK"
    too_big = fit_check(nodes, None, 4, 16.0, 1)
    assert too_big.verdict == "FAIL" and "pends forever" in too_big.detail
    assert "cpus_per_trial" in too_big.fix
    assert fit_check(nodes, "big", 8, 64.0, 0).verdict == "OK"
    assert fit_check(nodes, "gpu", 1, 1.0, 1).verdict == "FAIL"


def test_filesystem_type_of_a_path() -> None:
    mounts = "/dev/sda1 / ext4 rw 0 0\nserver:/home /home nfs4 rw 0 0\n"
    assert fs_type(Path("/home/alice/ws"), mounts) == "nfs4"
    assert fs_type(Path("/tmp"), mounts) == "ext4"
