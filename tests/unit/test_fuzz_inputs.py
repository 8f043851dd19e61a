"""Every door rea has, fed hostile input (issue 10): CLI arguments, rea.toml, hypotheses.toml,
knowledge files, runbooks, BYO schemas and data, plan/campaign/approval/journal files and the
DuckDB files, recurring campaigns (`rea schedule ...`, their files, `rea tick`), `rea doctor`.
For each case the real `rea` command (a new process, as a user runs it) must:

- print no traceback and exactly one `error:` line, exit 1 (refused) or 2 (bad input), and that
  line names what is wrong (a needle of the case) and is not the "bug in rea" fallback;
- write nothing outside the workspace (every file around it is compared before and after);
- leave no half-written file (no temp file anywhere in the workspace);
- leave the state as it was: every file of the workspace byte-identical, apart from lock files,
  the backend's own state and the insights DB (a sync may run), and each case's own checks.

A second table holds inputs rea must accept, saying what it did with them (a hypothesis it
cannot use is dropped with its reason, a damaged campaign is listed as UNREADABLE, ...). A third
holds inputs that the checking commands (`rea tick`, `rea doctor`) report as findings among their
others: exit 1, the finding named on stdout, the same guarantees otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import make_workspace

BUG = "this is a bug in rea"
PLAN_ARGS = ["plan", "--model", "lr", "--dataset", "synthetic", "--budget", "2gpu-h"]
PLAN_TINY = [*PLAN_ARGS, "--profile", "tiny"]
# campaigns of the template workspace and their states
TEMPLATE_STATES = {"p1": "PLANNED", "a1": "APPROVED"}
# what a command may touch even when it fails: locks, the backend's state, the insights DB
ALLOWED_CHANGES = (".rea/", "insights.duckdb", "insights.duckdb.wal", "insights-analyst.duckdb")
# the template workspace's recurring campaign: added, approved, then paused (so no case starts it)
SCHEDULE = "schedules/w"
SCHEDULE_ADD = ["schedule", "add", "new", "--model", "lr", "--dataset", "synthetic"]
SCHEDULE_APPROVE = ["schedule", "approve", "w", "--yes"]
BAD_BUDGETS = [
    "",
    "0",
    "-1",
    "lots",
    "1e400",
    "nan",
    "inf",
    "1e26gpu-h",
    "4gpu-h; rm -rf /",
    "4 gpu-years",
]
BAD_SCHEDULE_NAMES = ["../../x", "a/b", "..", "a\nb", "$(touch x)", "x" * 41, "", "nope"]


@dataclass(frozen=True)
class Case:
    id: str
    args: list[str]
    needle: str  # what the error line must say (case-insensitive)
    setup: Callable[[Path], None] | None = None  # gets the workspace
    codes: tuple[int, ...] = (1, 2)
    changed: tuple[str, ...] = ()  # workspace files (relative) the case itself changes
    post: Callable[[Path], None] | None = None
    env: dict[str, str] | None = None  # e.g. REA_NOW


# ----------------------------------------------------------------------------- helpers


def _write(rel: str, data: str | bytes) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and not os.access(path, os.W_OK):
            path.chmod(0o644)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)

    return setup


def _append(rel: str, data: bytes) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        with open(ws / rel, "ab") as fh:
            fh.write(data)

    return setup


def _toml(extra: str) -> Callable[[Path], None]:
    """rea.toml with `extra` appended (a new section, or a key before any section)."""

    def setup(ws: Path) -> None:
        path = ws / "rea.toml"
        text = path.read_text()
        if extra.lstrip().startswith("["):
            path.write_text(text + "\n" + extra)
        else:
            path.write_text(extra + "\n" + text)

    return setup


def _replace_toml_key(section: str, key: str, value: str) -> Callable[[Path], None]:
    """Set `key` of [section] in rea.toml to the TOML text `value`."""

    def setup(ws: Path) -> None:
        path = ws / "rea.toml"
        lines = path.read_text().splitlines()
        out, current, done = [], "", False
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("[") and stripped.endswith("]"):
                if current == section and not done:
                    out.append(f"{key} = {value}")
                    done = True
                current = stripped[1:-1]
            if current == section and stripped.split("=")[0].strip() == key:
                if not done:
                    out.append(f"{key} = {value}")
                    done = True
                continue
            out.append(line)
        if not done:
            out += [f"[{section}]", f"{key} = {value}"]
        path.write_text("\n".join(out) + "\n")

    return setup


def _top_key(key: str, value: str) -> Callable[[Path], None]:
    """Set the top-level `key` of rea.toml (written by `rea init`) to the TOML text `value`."""

    def setup(ws: Path) -> None:
        path = ws / "rea.toml"
        lines = path.read_text().splitlines()
        found = [i for i, line in enumerate(lines) if line.split("=")[0].strip() == key]
        lines[found[0]] = f"{key} = {value}"
        path.write_text("\n".join(lines) + "\n")

    return setup


def _json_edit(rel: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        path = ws / rel
        doc = json.loads(path.read_text())
        change(doc)
        if not os.access(path, os.W_OK):
            path.chmod(0o644)
        path.write_text(json.dumps(doc))

    return setup


def _byo(name: str, header: str, rows: list[str], schema_extra: str = "") -> Callable[[Path], None]:
    """A CSV and its schema next to the workspace (data lives outside it)."""

    def setup(ws: Path) -> None:
        folder = ws.parent / "data"
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.csv").write_text("\n".join([header, *rows]) + "\n")
        (folder / f"{name}.toml").write_text(
            f'data = "{name}.csv"\nlabel = "clicked"\ncategorical = ["user", "item"]\n'
            f'numerical = ["price"]\n{schema_extra}'
        )

    return setup


def _good_rows(n: int = 400, label: Callable[[int], object] = lambda i: i % 2) -> list[str]:
    return [f"u{i % 37},i{i % 53},{(i * 7) % 100}.5,{label(i)}" for i in range(n)]


def _state_is(cid: str, state: str) -> Callable[[Path], None]:
    def check(ws: Path) -> None:
        doc = json.loads((ws / "campaigns" / cid / "campaign.json").read_text())
        assert doc["state"] == state, (cid, doc["state"])

    return check


def _no_campaign(cid: str) -> Callable[[Path], None]:
    def check(ws: Path) -> None:
        assert not (ws / "campaigns" / cid).exists()

    return check


def _run_record(cid: str, due_at: str = "2026-12-01T00:00:00+00:00") -> dict[str, str]:
    return {"campaign_id": cid, "due_at": due_at, "started_at": due_at, "period": "2026-12"}


def _schedule_file(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    return _json_edit(f"{SCHEDULE}/{name}", change)


# (case id, damaged file, setup): every schedule file, cut, garbage, or valid JSON with values
# no writer produces (a cadence that overflows the due-time arithmetic, times that do not parse)
SCHEDULE_DAMAGE: list[tuple[str, str, Callable[[Path], None]]] = [
    ("template-cut", "template.json", _write(f"{SCHEDULE}/template.json", b'{"name": "w"')),
    ("template-bytes", "template.json", _write(f"{SCHEDULE}/template.json", b"\xff\xfe\x00")),
    ("template-list", "template.json", _write(f"{SCHEDULE}/template.json", b"[]")),
    (
        "template-every-huge",
        "template.json",
        _schedule_file("template.json", lambda d: d.update(every_days=1e300)),
    ),
    (
        "template-every-tiny",
        "template.json",
        _schedule_file("template.json", lambda d: d.update(every_days=1e-9)),
    ),
    (
        "template-cron",
        "template.json",
        _schedule_file("template.json", lambda d: d.update(every_days=None, cron="0 6 * *")),
    ),
    (
        "template-key",
        "template.json",
        _schedule_file("template.json", lambda d: d.update(colour=1)),
    ),
    ("state-cut", "state.json", _write(f"{SCHEDULE}/state.json", b"{")),
    (
        "state-paused",
        "state.json",
        _schedule_file("state.json", lambda d: d.update(paused="maybe")),
    ),
    (
        "state-run-id",
        "state.json",
        _schedule_file("state.json", lambda d: d.update(runs=[_run_record("../../x")])),
    ),
    (
        "state-run-time",
        "state.json",
        _schedule_file("state.json", lambda d: d.update(runs=[_run_record("w-1", "soon")])),
    ),
    ("approval-list", "approval.json", _write(f"{SCHEDULE}/approval.json", b"[]")),
    (
        "approval-until",
        "approval.json",
        _schedule_file("approval.json", lambda d: d.update(valid_until="never")),
    ),
    (
        "approval-inf",
        "approval.json",
        _schedule_file("approval.json", lambda d: d.update(period_gpu_hours=float("inf"))),
    ),
    (
        "approval-negative",
        "approval.json",
        _schedule_file("approval.json", lambda d: d.update(run_gpu_hours=-1)),
    ),
]

# ----------------------------------------------------------------------------- the cases

HOSTILE_IDS = ["../../x", "a/b", "..", ".hidden", "x" * 65, "é", "a b", "a\nb", "-", "$(touch x)"]

CASES: list[Case] = [
    # --- rea plan arguments
    *[
        Case(
            f"plan-model-{i}",
            ["plan", "--model", m, "--dataset", "synthetic", "--budget", "2"],
            "model",
        )
        for i, m in enumerate(["", "resnet", "../lr", "LR", "lr\n", "lr; touch x"])
    ],
    *[
        Case(
            f"plan-dataset-{i}",
            ["plan", "--model", "lr", "--dataset", d, "--budget", "2"],
            "dataset",
        )
        for i, d in enumerate(
            [
                "",
                "imagenet",
                "criteo:/nonexistent.tsv",
                "/nonexistent/schema.toml",
                "../../x.yaml",
                "synthetic\x1b[31m",
                "criteo:",
            ]
        )
    ],
    *[
        Case(
            f"plan-budget-{i}",
            ["plan", "--model", "lr", "--dataset", "synthetic", "--budget", b],
            "budget",
        )
        for i, b in enumerate(
            [
                "",
                "0",
                "-1",
                "lots",
                "1e400",
                "9" * 400,
                "1e26gpu-h",
                "100000000000000000000000000",
                "nan",
                "inf",
                "4gpu-h; rm -rf /",
                "0x10",
                "4 gpu-years",
                "4h!",
            ]
        )
    ],
    Case(
        "plan-budget-too-small",
        [*PLAN_TINY[:-4], "--budget", "0.0001gpu-h", "--profile", "tiny"],
        "too small",
    ),
    Case("plan-metric", [*PLAN_TINY, "--metric", "accuracy"], "metric"),
    Case("plan-profile", [*PLAN_ARGS, "--profile", "huge"], "profile"),
    *[
        Case(f"plan-id-{i}", [*PLAN_TINY, "--id", cid], "campaign id", post=_no_campaign("x"))
        for i, cid in enumerate([*HOSTILE_IDS, "", " "])
    ],
    Case("plan-id-exists", [*PLAN_TINY, "--id", "p1"], "already exists"),
    Case("plan-goal-huge", [*PLAN_TINY, "--goal", "g" * 100_000], "--goal"),
    Case("plan-goal-escape", [*PLAN_TINY, "--goal", "ok \x1b[2J\x1b[H cleared"], "--goal"),
    Case("plan-unknown-option", [*PLAN_TINY, "--budgett", "3"], "no such option"),
    Case("plan-missing-option", ["plan", "--model", "lr"], "missing option"),
    # --- campaign ids given to every command (nothing created, nowhere)
    *[
        Case(f"{cmd}-id-{i}", [cmd, cid, *extra], "campaign", codes=(2,))
        for cmd, extra in [
            ("approve", ["--yes"]),
            ("launch", []),
            ("cancel", []),
            ("resume", []),
            ("status", []),
            ("report", []),
            ("watch", []),
            ("review", ["--accept"]),
        ]
        for i, cid in enumerate([*HOSTILE_IDS, "nope"])
    ],
    Case("launch-dry-run-unknown", ["launch", "nope", "--dry-run"], "unknown campaign"),
    *[
        Case(f"watch-interval-{i}", ["watch", "a1", "--interval", v], "interval")
        for i, v in enumerate(["-1", "0", "nan", "inf", "1e9", "x"])
    ],
    # --- commands refused in this state
    Case("launch-unapproved", ["launch", "p1"], "approve"),
    Case("approve-twice", ["approve", "a1", "--yes"], "only a PLANNED"),
    Case("review-not-awaiting", ["review", "a1", "--reject"], "AWAITING_REVIEW"),
    Case("review-both", ["review", "a1", "--accept", "--reject"], "exactly one"),
    Case("review-note-huge", ["review", "a1", "--accept", "--note", "n" * 5000], "--note"),
    Case("approve-no-tty", ["approve", "p1"], "aborted"),  # stdin closed: the prompt aborts
    # --- cron
    *[
        Case(f"cron-every-{i}", ["cron", "install", "--every", e], "every")
        for i, e in enumerate(["0", "61", "-5", "abc", "1e3", ""])
    ],
    # --- the tick's clock
    *[
        Case(f"tick-now-{i}", ["tick", "--now", v], "--now", codes=(2,))
        for i, v in enumerate(
            [
                "",
                "garbage",
                "tomorrow",
                "2026-13-01",
                "2026-12-01T25:00",
                "9999-12-31T23:59:59.999999",
                "0001-01-01T00:00+01:00",
                "2026-12-01\n* * * * * touch x",
            ]
        )
    ],
    Case("tick-env-now", ["tick"], "$REA_NOW", codes=(2,), env={"REA_NOW": "next week"}),
    Case("tick-env-now-far", ["tick"], "$REA_NOW", codes=(2,), env={"REA_NOW": "9999-12-31"}),
    Case("tick-unknown-option", ["tick", "--nwo", "2026-12-01"], "no such option"),
    Case("tick-extra-argument", ["tick", "a1"], "unexpected extra argument"),
    # --- recurring campaigns
    *[
        Case(f"schedule-add-cron-{i}", [*SCHEDULE_ADD, "--cron", c], "--cron", codes=(2,))
        for i, c in enumerate(
            [
                "",
                "every monday",
                "61 * * * *",
                "0 6 * * 1 2026",
                "* * * *",
                "@weekly",
                "0 6 * * 1; touch x",
                "0 6 31 2 *\n* * * * * touch x",
            ]
        )
    ],
    *[
        Case(f"schedule-add-every-{i}", [*SCHEDULE_ADD, "--every", e], "--every", codes=(2,))
        for i, e in enumerate(
            [
                "",
                "weekly",
                "0d",
                "-1d",
                "0.5h",
                "367d",
                "9" * 30 + "d",
                "1e400d",
                "nan",
                "inf",
                "7",
                "7 weeks",
                "7d; rm -rf /",
            ]
        )
    ],
    Case(
        "schedule-add-both",
        [*SCHEDULE_ADD, "--every", "7d", "--cron", "0 6 * * 1"],
        "exactly one",
        codes=(2,),
    ),
    Case("schedule-add-neither", SCHEDULE_ADD, "exactly one", codes=(2,)),
    *[
        Case(
            f"schedule-add-name-{i}",
            ["schedule", "add", name, *SCHEDULE_ADD[3:], "--every", "7d"],
            "schedule name",
            codes=(2,),
        )
        for i, name in enumerate([*HOSTILE_IDS, "", "x" * 41])
    ],
    Case(
        "schedule-add-exists",
        ["schedule", "add", "w", *SCHEDULE_ADD[3:], "--every", "7d"],
        "already exists",
        codes=(2,),
    ),
    *[
        Case(
            f"schedule-add-{what}",
            [*SCHEDULE_ADD, "--every", "7d", *extra],
            needle,
            codes=(2,),
        )
        for what, extra, needle in [
            ("model", ["--model", "resnet"], "model"),
            ("dataset", ["--dataset", "imagenet"], "dataset"),
            ("profile", ["--profile", "huge"], "profile"),
            ("metric", ["--metric", "accuracy"], "metric"),
            ("goal-escape", ["--goal", "ok \x1b[2J\x1b[H cleared"], "--goal"),
            ("goal-huge", ["--goal", "g" * 100_000], "--goal"),
        ]
    ],
    Case(
        "schedule-add-missing-model",
        ["schedule", "add", "new", "--dataset", "synthetic", "--every", "7d"],
        "missing option",
    ),
    *[
        Case(
            f"schedule-approve-{which}-budget-{i}",
            [*SCHEDULE_APPROVE, *args],
            "budget",
            codes=(2,),
        )
        for i, b in enumerate(BAD_BUDGETS)
        for which, args in [
            ("run", ["--run-budget", b, "--period-budget", "20gpu-h"]),
            ("period", ["--run-budget", "1gpu-h", "--period-budget", b]),
        ]
    ],
    Case(
        "schedule-approve-run-over-period",
        [*SCHEDULE_APPROVE, "--run-budget", "30gpu-h", "--period-budget", "20gpu-h"],
        "exceeds",
        codes=(2,),
    ),
    *[
        Case(
            f"schedule-approve-{option[2:]}-{i}",
            [*SCHEDULE_APPROVE, "--run-budget", "1gpu-h", "--period-budget", "2gpu-h", option, v],
            option,
            codes=(2,),
        )
        for option, values in [
            ("--period", ["year", "", "Month", "week; rm -rf /"]),
            ("--valid-until", ["", "forever", "2000-01-01", "2026-13-01", "2099-12-31\nx"]),
        ]
        for i, v in enumerate(values)
    ],
    Case(
        "schedule-approve-unknown",
        [
            "schedule",
            "approve",
            "nope",
            "--yes",
            "--run-budget",
            "1gpu-h",
            "--period-budget",
            "2gpu-h",
        ],
        "no schedule",
        codes=(2,),
    ),
    Case(  # stdin closed: the prompt aborts
        "schedule-approve-no-tty",
        ["schedule", "approve", "w", "--run-budget", "1gpu-h", "--period-budget", "2gpu-h"],
        "aborted",
        codes=(1,),
    ),
    *[
        Case(f"schedule-{cmd}-name-{i}", ["schedule", cmd, name], "schedule", codes=(2,))
        for cmd in ("pause", "resume", "remove")
        for i, name in enumerate(BAD_SCHEDULE_NAMES)
    ],
    Case("schedule-list-extra-argument", ["schedule", "list", "w"], "unexpected extra argument"),
    Case("schedule-unknown-command", ["schedule", "rename", "w"], "no such command"),
    Case(
        "schedule-list-env-now",
        ["schedule", "list"],
        "$REA_NOW",
        codes=(2,),
        env={"REA_NOW": "2026-12-01T06:00\x1b[2J"},
    ),
    # --- doctor (a data set it cannot use is a FAIL among its checks: see REPORTED)
    Case("doctor-unknown-option", ["doctor", "--fix"], "no such option"),
    Case("doctor-extra-argument", ["doctor", "p1"], "unexpected extra argument"),
    Case("doctor-dataset-missing", ["doctor", "--dataset"], "requires an argument"),
    Case(
        "doctor-toml",
        ["doctor"],
        "toml",
        setup=_write("rea.toml", "[local\n"),
        changed=("rea.toml",),
    ),
    # --- insights
    *[
        Case(f"sql-{i}", ["insights", "sql", q], needle)
        for i, (q, needle) in enumerate(
            [
                ("DROP TABLE campaigns", "only SELECT"),
                ("DELETE FROM campaigns", "only SELECT"),
                ("SELECT 1; DROP TABLE campaigns", "one"),
                ("ATTACH '/tmp/rea-fuzz.db' AS x", "only SELECT"),
                ("COPY campaigns TO 'leak.csv'", "only SELECT"),
                ("INSTALL httpfs", "only SELECT"),
                ("", "select"),
                ("SELEC 1", "sql"),
                ("SELECT * FROM no_such_table", "no_such_table"),
                ("PRAGMA database_list", "only SELECT"),
            ]
        )
    ],
    Case("sql-format", ["insights", "sql", "FROM campaigns", "--format", "xml"], "format"),
    Case("sql-parquet-stdout", ["insights", "sql", "FROM campaigns", "-f", "parquet"], "--output"),
    *[
        Case(
            f"sql-onto-{i}",
            ["insights", "sql", "FROM campaigns", "-f", "csv", "-o", target, "--force"],
            "refusing",
        )
        for i, target in enumerate(
            [
                "{ws}/insights.duckdb",
                "{ws}/insights-analyst.duckdb",
                "{ws}/rea.toml",
                "{ws}/campaigns/p1/plan.json",
                "{ws}/campaigns/new.csv",
                "{ws}/.rea/x.csv",
                "{ws}/campaigns/../insights.duckdb",
            ]
        )
    ],
    Case(
        "sql-onto-existing",
        ["insights", "sql", "FROM campaigns", "-f", "csv", "-o", "{box}/outside.txt"],
        "--force",
    ),
    Case(
        "sql-onto-folder",
        ["insights", "sql", "FROM campaigns", "-f", "csv", "-o", "{box}", "--force"],
        "folder",
    ),
    Case("export-into-campaigns", ["insights", "export", "{ws}/campaigns"], "refusing"),
    Case("export-into-state", ["insights", "export", "{ws}/.rea/out"], "refusing"),
    Case("effects-extra-argument", ["insights", "effects", "dcn_v2"], "unexpected extra argument"),
    Case("effects-unknown-option", ["insights", "effects", "--model", "lr"], "no such option"),
    Case("effects-option-missing", ["insights", "effects", "--hypothesis"], "requires an argument"),
    *[
        Case(f"report-onto-{i}", ["insights", "report", "-o", target, "--force"], "refusing")
        for i, target in enumerate(
            [
                "{ws}/rea.toml",
                "{ws}/insights.duckdb",
                "{ws}/insights-analyst.duckdb",
                "{ws}/hypotheses.toml",
                "{ws}/campaigns/p1/plan.json",
                "{ws}/campaigns/new.html",
                "{ws}/.rea/x.html",
            ]
        )
    ],
    Case("report-onto-existing", ["insights", "report", "-o", "{box}/outside.txt"], "--force"),
    Case("report-onto-folder", ["insights", "report", "-o", "{box}", "--force"], "folder"),
    Case("report-output-empty", ["insights", "report", "-o", ""], "folder"),
    Case("path-extra-argument", ["insights", "path", "p1"], "unexpected extra argument"),
    Case("path-unknown-option", ["insights", "path", "--json"], "no such option"),
    # --- workspace and init
    Case("workspace-missing", ["--workspace", "{box}/nowhere", "status"], "rea init"),
    Case("workspace-newline", ["--workspace", "{box}/a\nb", "status"], "workspace"),
    Case("init-exists", ["init", "{ws}"], "already"),
    Case("init-backend", ["init", "{box}/new-ws", "--backend", "k8s"], "backend"),
    Case("init-newline", ["init", "{box}/new\nws"], "newline"),
    Case("init-group-alone", ["init", "{box}/new-ws", "--group", "staff"], "--shared"),
    Case(
        "init-group-unknown",
        ["init", "{box}/new-ws", "--shared", "--group", "no-such-grp"],
        "group",
    ),
    # --- rea.toml (read by every command)
    *[
        Case(f"toml-{i}", ["status"], needle, setup=setup, changed=("rea.toml",))
        for i, (setup, needle) in enumerate(
            [
                (_replace_toml_key("guardrails", "max_failed_fraction", "nan"), "finite"),
                (_replace_toml_key("guardrails", "max_failed_fraction", "inf"), "finite"),
                (_replace_toml_key("planner", "significance", "nan"), "finite"),
                (_replace_toml_key("slurm", "mem_gb", "inf"), "finite"),
                (_replace_toml_key("slurm", "mem_gb", "-1.0"), "mem_gb"),
                (_replace_toml_key("local", "max_parallel", "9223372036854775807"), "max_parallel"),
                (_replace_toml_key("local", "max_parallel", "0"), "max_parallel"),
                (_replace_toml_key("local", "gpus_per_trial", "-1"), "gpus_per_trial"),
                (_replace_toml_key("local", "time_limit_min", "100000000"), "time_limit_min"),
                (_replace_toml_key("insights", "storage_version", '"banana"'), "storage_version"),
                (_replace_toml_key("insights", "lock_retries", "1000000"), "lock_retries"),
                (
                    _replace_toml_key("slurm", "partition", '"gpu\\n* * * * * touch /tmp/x"'),
                    "one line",
                ),
                (
                    _replace_toml_key("slurm", "extra_sbatch", '{ "x" = "1\\n#SBATCH --uid=0" }'),
                    "one line",
                ),
                (_replace_toml_key("slurm", "setup", '["ok", "a\\rb"]'), "one line"),
                (_replace_toml_key("approval", "approvers", '["root; rm"]'), "approvers"),
                (_replace_toml_key("approval", "approvers", "3"), "approvers"),
                (_replace_toml_key("approval", "approver_not_planner", '"yes"'), "approver"),
                (_top_key("shared", '"yes"'), "shared"),
                (_toml("[nosuchsection]\nx = 1"), "unknown key"),
                (_replace_toml_key("local", "max_paralel", "2"), "unknown key"),
                (_top_key("backend", '"k8s"'), "backend"),
                (_top_key("backend", "3"), "backend"),
                (_toml("local = 3"), "toml"),
                (_write("rea.toml", b'backend = "local"\n# \xff\xfe\n'), "toml"),
                (_write("rea.toml", "backend = \n"), "toml"),
                (_write("rea.toml", "[local\n"), "toml"),
            ]
        )
    ],
    # --- hypotheses.toml, knowledge/, runbooks/ (read by rea plan)
    *[
        Case(
            f"hypotheses-{i}",
            PLAN_TINY,
            needle,
            setup=_write("hypotheses.toml", text),
            changed=("hypotheses.toml",),
        )
        for i, (text, needle) in enumerate(
            [
                ("hypothesis = 3\n", "[[hypothesis]]"),
                ("hypothesis = [1, 2]\n", "[[hypothesis]]"),
                ("hypotheses = []\n", "unknown top-level key"),
                (
                    '[[hypothesis]]\nid = "baseline"\ntitle = "t"\n'
                    'delta = {"train.lr_dense" = 1e-3}\n',
                    "baseline",
                ),
                (
                    '[[hypothesis]]\nid = "../x"\ntitle = "t"\ndelta = {"train.lr_dense" = 1e-3}\n',
                    "id",
                ),
                ('[[hypothesis]]\nid = "h"\ntitle = "t"\ndelta = 3\n', "delta"),
                ('[[hypothesis]]\nid = "h"\ntitle = "t"\ndelta = {}\n', "delta"),
                (
                    '[[hypothesis]]\nid = "h"\ntitle = "t"\ndelta = {"train.lr_dense" = 1e-3}\n'
                    "prior = 2.0\n",
                    "prior",
                ),
                (
                    '[[hypothesis]]\nid = "h"\ntitle = "t"\ndelta = {"train.lr_dense" = 1e-3}\n'
                    '[[hypothesis]]\nid = "h"\ntitle = "u"\ndelta = {"train.lr_dense" = 1e-2}\n',
                    "also defined",
                ),
                (b'[[hypothesis]]\nid = "h"\ntitle = "\xff"\n', "toml"),
                ("[[hypothesis]\n", "toml"),
            ]
        )
    ],
    *[
        Case(
            f"knowledge-{i}",
            PLAN_TINY,
            needle,
            setup=_write("knowledge/mine.toml", text),
            changed=("knowledge/mine.toml",),
        )
        for i, (text, needle) in enumerate(
            [
                ("strategy = 3\n", "[[strategy]]"),
                ('[[strategy]]\nid = "baseline"\n', "baseline"),
                ('[[strategy]]\nid = "x"\n', "strategy 1"),
                ("note = 1\n", "unknown top-level key"),
            ]
        )
    ],
    *[
        Case(
            f"runbooks-{i}",
            PLAN_TINY,
            needle,
            setup=_write("runbooks/site.toml", text),
            changed=("runbooks/site.toml",),
        )
        for i, (text, needle) in enumerate(
            [
                (
                    '[[runbook]]\nid = "x"\ntitle = "t"\ndiagnosis = "d"\naction = "explode"\n',
                    "action",
                ),
                (
                    '[[runbook]]\nid = "x"\ntitle = "t"\ndiagnosis = "d"\naction = "retry_with"\n'
                    'change = { "model.embedding_dim" = 8 }\n',
                    "cannot change",
                ),
                (
                    '[[runbook]]\nid = "x"\ntitle = "t"\ndiagnosis = "d"\naction = "retry_with"\n'
                    'change = { "train.batch_size" = "xabc" }\n',
                    "factor",
                ),
                (
                    '[[runbook]]\nid = "x"\ntitle = "t"\ndiagnosis = "d"\naction = "retry_with"\n'
                    'change = { "train.batch_size" = "x-1" }\n',
                    "factor",
                ),
                (
                    '[[runbook]]\nid = "x"\ntitle = "t"\ndiagnosis = "d"\naction = "retry_with"\n'
                    'change = { "train.batch_size" = "xnan" }\n',
                    "factor",
                ),
                (
                    '[[runbook]]\nid = "x"\ntitle = "t"\ndiagnosis = "d"\naction = "retry_with"\n',
                    "change",
                ),
                (
                    '[[runbook]]\nid = "x"\ntitle = "t"\ndiagnosis = "d"\naction = "retry"\n'
                    'change = { "train.batch_size" = 8 }\n',
                    "retry_with",
                ),
                ("runbook = 3\n", "[[runbook]]"),
                (b'[[runbook]]\nid = "\xff"\n', "toml"),
            ]
        )
    ],
    # --- BYO schema and data (read and checked by rea plan, before anything is approved)
    *[
        Case(
            f"byo-{name}",
            [
                "plan",
                "--model",
                "lr",
                "--dataset",
                "{box}/data/" + name + ".toml",
                "--budget",
                "2gpu-h",
                "--profile",
                "tiny",
            ],
            needle,
            setup=setup,
        )
        for name, setup, needle in [
            (
                "missing-column",
                _byo(
                    "missing-column",
                    "user,item,clicked",
                    [r.rsplit(",", 2)[0] + "," + r.rsplit(",", 1)[1] for r in _good_rows()],
                ),
                "missing column",
            ),
            (
                "three-labels",
                _byo("three-labels", "user,item,price,clicked", _good_rows(label=lambda i: i % 3)),
                "0/1",
            ),
            (
                "text-label",
                _byo(
                    "text-label",
                    "user,item,price,clicked",
                    _good_rows(label=lambda i: "yes" if i % 2 else "no"),
                ),
                "not numeric",
            ),
            (
                "one-class",
                _byo("one-class", "user,item,price,clicked", _good_rows(label=lambda i: 1)),
                "label",
            ),
            ("five-rows", _byo("five-rows", "user,item,price,clicked", _good_rows(5)), "rows"),
            (
                "semicolons",
                _byo(
                    "semicolons",
                    "user;item;price;clicked",
                    [r.replace(",", ";") for r in _good_rows()],
                ),
                "delimiter",
            ),
            (
                "all-nan",
                _byo(
                    "all-nan",
                    "user,item,price,clicked",
                    [",".join([*r.split(",")[:2], "", r.split(",")[3]]) for r in _good_rows()],
                ),
                "no value",
            ),
            ("header-only", _byo("header-only", "user,item,price,clicked", []), "no rows"),
            ("empty-file", _byo("empty-file", "", []), "empty"),
            (
                "schema-key",
                _byo("schema-key", "user,item,price,clicked", _good_rows(), "colour = 1\n"),
                "colour",
            ),
        ]
    ],
    # --- campaign files
    *[
        Case(
            f"campaign-json-{i}-{cmd}",
            [cmd, "p1", *extra],
            "campaign.json",
            setup=_write("campaigns/p1/campaign.json", data),
            codes=(2,),
            changed=("campaigns/p1/campaign.json",),
        )
        for i, data in enumerate(
            [
                b"{",
                b'{"state": "PLANNED"}\xff',
                b"[]",
                b'{"schema": 1}',
                b'{"campaign_id": "p1", "state": "BANANA"}',
                b"\x00" * 64,
            ]
        )
        for cmd, extra in [
            ("status", []),
            ("approve", ["--yes"]),
            ("cancel", []),
            ("resume", []),
            ("report", []),
        ]
    ],
    *[
        Case(
            f"journal-{i}-{cmd}",
            [cmd, "p1", *extra],
            "journal.jsonl",
            setup=_append("campaigns/p1/journal.jsonl", data),
            codes=(2,),
            changed=("campaigns/p1/journal.jsonl",),
        )
        for i, data in enumerate(
            [
                b"\xff\xfe\n",
                b"3\n",
                b'{"seq": "x", "event": "e"}\n',
                b'{"seq": true, "event": "e"}\n',
                b'{"seq": -1, "event": "e"}\n',
                b'{"seq": 99}\n',
                b"[1, 2]\n",
            ]
        )
        for cmd, extra in [("approve", ["--yes"]), ("cancel", [])]
    ],
    *[
        Case(
            f"plan-json-planned-{i}",
            ["approve", "p1", "--yes"],
            "plan.json",
            setup=_write("campaigns/p1/plan.json", data),
            changed=("campaigns/p1/plan.json",),
        )
        for i, data in enumerate([b"{", b"\xff", b"[]", b"{}"])
    ],
    *[
        Case(
            f"plan-json-approved-{i}-{'-'.join(extra) or 'launch'}",
            ["launch", "a1", *extra],
            "plan.json",
            setup=setup,
            changed=("campaigns/a1/plan.json",),
        )
        for i, setup in enumerate(
            [
                _write("campaigns/a1/plan.json", b"{"),
                _json_edit(
                    "campaigns/a1/plan.json", lambda d: d["engine"].update(exploitation_batch=12)
                ),
            ]
        )
        for extra in ([], ["--dry-run"])
    ],
    Case(
        "plan-and-campaign-hash-edited",
        ["launch", "a1"],
        "edited after approval",
        setup=lambda ws: (
            _json_edit(
                "campaigns/a1/plan.json", lambda d: d["engine"].update(exploitation_batch=12)
            )(ws),
            _json_edit(
                "campaigns/a1/campaign.json",
                lambda d: d.update(
                    plan_hash="sha256:"
                    + hashlib.sha256((ws / "campaigns/a1/plan.json").read_bytes()).hexdigest()
                ),
            )(ws),
        ),
        changed=("campaigns/a1/plan.json", "campaigns/a1/campaign.json"),
    ),
    Case(
        "budget-edited",
        ["launch", "a1"],
        "approved",
        setup=_json_edit(
            "campaigns/a1/campaign.json", lambda d: d["budget"].update(approved_gpu_hours=1e6)
        ),
        changed=("campaigns/a1/campaign.json",),
    ),
    Case(
        "approval-damaged",
        ["launch", "a1"],
        "approval.json",
        setup=_write("campaigns/a1/approval.json", b"{not json"),
        changed=("campaigns/a1/approval.json",),
    ),
    Case(
        "approval-other-hash",
        ["launch", "a1"],
        "edited after approval",
        setup=_json_edit(
            "campaigns/a1/approval.json", lambda d: d.update(plan_hash="sha256:" + "0" * 64)
        ),
        changed=("campaigns/a1/approval.json",),
    ),
    Case(
        "approval-group-writable",
        ["launch", "a1"],
        "rewritten by others",
        setup=lambda ws: (ws / "campaigns/a1/approval.json").chmod(0o664),
        changed=("campaigns/a1/approval.json",),
    ),
    Case(
        "approval-missing",
        ["launch", "a1"],
        "approval.json",
        setup=lambda ws: (ws / "campaigns/a1/approval.json").unlink(),
        changed=("campaigns/a1/approval.json",),
    ),
    # --- the DuckDB files
    *[
        Case(f"db-{i}{suffix}", ["insights", *args], "insights", setup=setup)
        for suffix, args in [
            ("", ["sql", "FROM campaigns"]),
            ("-effects", ["effects"]),
            ("-report", ["report"]),
        ]
        for i, setup in enumerate(
            [
                lambda ws: (
                    (ws / "insights-analyst.duckdb").unlink()
                    or (ws / "insights.duckdb").write_bytes(b"not a duckdb file" * 100)
                ),
                lambda ws: (
                    (ws / "insights-analyst.duckdb").chmod(0o644)
                    or (ws / "insights-analyst.duckdb").write_bytes(b"\x00" * 4096)
                ),
            ]
        )
    ],
    # --- schedule files (the tick reports them: see REPORTED)
    *[
        Case(
            f"schedule-file-{name}-{'-'.join(args)}",
            ["schedule", *args],
            f"{SCHEDULE}/{file}",
            setup=setup,
            codes=(2,),
            changed=(f"{SCHEDULE}/{file}",),
        )
        for name, file, setup in SCHEDULE_DAMAGE
        for args in (
            [["list"]]
            + ([["pause", "w"]] if file != "approval.json" else [])
            + (
                [
                    ["resume", "w"],
                    [
                        "approve",
                        "w",
                        "--run-budget",
                        "1gpu-h",
                        "--period-budget",
                        "2gpu-h",
                        "--yes",
                    ],
                ]
                if name.endswith("-cut") and file == "template.json"
                else []
            )
            + ([["resume", "w"]] if name.endswith("-cut") and file == "state.json" else [])
        )
    ],
]


# accepted inputs: exit 0, and what rea did with them
@dataclass(frozen=True)
class Accepted:
    id: str
    args: list[str]
    check: Callable[[Path, subprocess.CompletedProcess[str]], None]
    setup: Callable[[Path], None] | None = None


def _dropped_with_reason(
    hid: str, words: str
) -> Callable[[Path, subprocess.CompletedProcess[str]], None]:
    def check(ws: Path, done: subprocess.CompletedProcess[str]) -> None:
        plan = json.loads((ws / "campaigns/ok/plan.json").read_text())
        assert hid not in plan["hypotheses"]
        reasons = [
            d["reason"] for d in plan["dropped"] if hid in (d["hypothesis_id"], d["strategy"])
        ]
        assert reasons and words in reasons[0], plan["dropped"]
        assert hid in done.stdout  # the plan output says so too

    return check


def _listed_unreadable(ws: Path, done: subprocess.CompletedProcess[str]) -> None:
    rows = {r["campaign_id"]: r for r in json.loads(done.stdout)}
    assert rows["p1"]["state"] == "UNREADABLE" and "campaign.json" in rows["p1"]["error"]
    assert rows["a1"]["state"] == "APPROVED"


def _approved_despite_db(ws: Path, done: subprocess.CompletedProcess[str]) -> None:
    _state_is("p1", "APPROVED")(ws)


def _schedule_removed(ws: Path, done: subprocess.CompletedProcess[str]) -> None:
    assert not (ws / SCHEDULE).exists() and "removed schedule w" in done.stdout, done.stdout
    listed = _rea(ws, ["schedule", "list", "--json"], ws.parent)
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr


def _no_effects_tables_intact(ws: Path, done: subprocess.CompletedProcess[str]) -> None:
    assert json.loads(done.stdout) == []
    counted = _rea(
        ws, ["insights", "sql", "SELECT count(*) AS n FROM campaigns", "-f", "json"], ws.parent
    )
    assert counted.returncode == 0, counted.stderr  # the filter was a value, not SQL


ACCEPTED: list[Accepted] = [
    Accepted(
        "hypothesis-inf",
        [*PLAN_TINY, "--id", "ok"],
        _dropped_with_reason("h1", "finite"),
        _write(
            "hypotheses.toml",
            '[[hypothesis]]\nid = "h1"\ntitle = "t"\ndelta = {"train.lr_dense" = inf}\n',
        ),
    ),
    Accepted(
        "hypothesis-unknown-key",
        [*PLAN_TINY, "--id", "ok"],
        _dropped_with_reason("h1", "train.nosuch"),
        _write(
            "hypotheses.toml",
            '[[hypothesis]]\nid = "h1"\ntitle = "t"\ndelta = {"train.nosuch" = 1}\n',
        ),
    ),
    Accepted(
        "hypothesis-unknown-family",
        [*PLAN_TINY, "--id", "ok"],
        _dropped_with_reason("h1", "unknown family"),
        _write(
            "hypotheses.toml",
            '[[hypothesis]]\nid = "h1"\ntitle = "t"\n'
            'delta = {"train.lr_dense" = 1e-3}\nfamilies = ["transformer"]\n',
        ),
    ),
    Accepted(
        "hypothesis-noop",
        [*PLAN_TINY, "--id", "ok"],
        _dropped_with_reason("h1", "no change"),
        _write(
            "hypotheses.toml",
            '[[hypothesis]]\nid = "h1"\ntitle = "t"\ndelta = {"train.epochs" = 2}\n',
        ),
    ),
    Accepted(
        "status-list-damaged",
        ["status", "--json"],
        _listed_unreadable,
        _write("campaigns/p1/campaign.json", b"\xff\xfe{"),
    ),
    Accepted(
        "approve-db-garbage",
        ["approve", "p1", "--yes"],
        _approved_despite_db,
        lambda ws: (ws / "insights.duckdb").write_bytes(b"garbage" * 512),
    ),
    # what every error about a damaged schedule file says to do must work
    *[
        Accepted(
            f"schedule-remove-damaged-{name}", ["schedule", "remove", "w"], _schedule_removed, setup
        )
        for name, _, setup in SCHEDULE_DAMAGE
        if name.endswith("-cut")
    ],
    *[
        Accepted(
            f"effects-filter-{option[2:]}",
            ["insights", "effects", option, "x' OR 1=1; DROP TABLE campaigns; --", "--json"],
            _no_effects_tables_intact,
        )
        for option in ("--model-family", "--dataset", "--hypothesis")
    ],
]


# findings of the checking commands: exit 1, each needle on stdout
@dataclass(frozen=True)
class Reported:
    id: str
    args: list[str]
    needles: tuple[str, ...]
    setup: Callable[[Path], None] | None = None
    changed: tuple[str, ...] = ()


REPORTED: list[Reported] = [
    # the tick goes on with every other campaign and schedule, naming the damaged file and the fix
    *[
        Reported(
            f"tick-schedule-file-{name}",
            ["tick"],
            ("schedule w error", f"{SCHEDULE}/{file}", "rea schedule remove w"),
            setup,
            (f"{SCHEDULE}/{file}",),
        )
        for name, file, setup in SCHEDULE_DAMAGE
    ],
    *[
        Reported(f"doctor-dataset-{i}", ["doctor", "--dataset", d], ("FAIL data set",))
        for i, d in enumerate(
            [
                "imagenet",
                "",
                "criteo:/nonexistent.tsv",
                "{box}/nowhere/schema.toml",
                "../../x.yaml",
                "synthetic\x1b[31m",
            ]
        )
    ],
]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = make_workspace(tmp_path_factory.mktemp("fuzz") / "ws")
    for cid in TEMPLATE_STATES:
        done = _rea(ws, [*PLAN_TINY, "--id", cid], ws.parent)
        assert done.returncode == 0, done.stderr
    done = _rea(ws, ["approve", "a1", "--yes"], ws.parent)
    assert done.returncode == 0, done.stderr
    for args in (
        [*SCHEDULE_ADD[:2], "w", *SCHEDULE_ADD[3:], "--profile", "tiny", "--every", "7d"],
        [*SCHEDULE_APPROVE, "--run-budget", "1gpu-h", "--period-budget", "2gpu-h"],
        ["schedule", "pause", "w"],
    ):
        done = _rea(ws, args, ws.parent)
        assert done.returncode == 0, done.stderr
    return ws


@pytest.fixture
def box(template: Path, tmp_path: Path) -> Path:
    """A sandbox: a fresh copy of the template workspace, a file and a folder beside it."""
    box = tmp_path / "box"
    shutil.copytree(template, box / "ws", symlinks=True)
    (box / "outside.txt").write_text("the user's own file\n")
    (box / "elsewhere").mkdir()
    return box


def _rea(
    ws: Path, args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": "200", **(env or {})}
    full.pop("REA_WORKSPACE", None)
    cmd = [sys.executable, "-m", "rea_cli"]
    if not args or (args[0] not in ("init",) and "--workspace" not in args):
        cmd += ["--workspace", str(ws)]
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=180,
    )


def _files(root: Path) -> dict[str, bytes | str]:
    """Every file under root -> its bytes (folders and links by kind), read as root sees it."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = f"link:{os.readlink(path)}"
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = path.read_bytes()
    return out


def _expand(args: list[str], box: Path) -> list[str]:
    return [a.replace("{ws}", str(box / "ws")).replace("{box}", str(box)) for a in args]


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    both = done.stdout + done.stderr
    assert "Traceback" not in both, both
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and len(lines) == 1, done.stderr
    assert BUG not in errors[0], errors[0]
    return errors[0]


def _changed(before: dict[str, bytes | str], after: dict[str, bytes | str]) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


# ----------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_error_line_and_changes_nothing(box: Path, case: Case) -> None:
    ws = box / "ws"
    if case.setup is not None:
        case.setup(ws)
    outside_before = _outside(box)
    ws_before = _files(ws)

    done = _rea(ws, _expand(case.args, box), box, case.env)

    line = _one_error_line(done)
    assert done.returncode in case.codes, (done.returncode, line)
    assert case.needle.lower() in line.lower(), line
    _assert_nothing_changed(box, outside_before, ws_before, case.changed)
    if case.post is not None:
        case.post(ws)


def _outside(box: Path) -> dict[str, bytes | str]:
    return {k: v for k, v in _files(box).items() if not k.startswith("ws/") and k != "ws"}


def _assert_nothing_changed(
    box: Path,
    outside_before: dict[str, bytes | str],
    ws_before: dict[str, bytes | str],
    changed: tuple[str, ...],
) -> None:
    ws = box / "ws"
    outside_after = _outside(box)
    assert outside_after == outside_before, _changed(outside_before, outside_after)
    ws_after = _files(ws)
    assert not [k for k in ws_after if k.endswith(".tmp")], "half-written file left"
    unexpected = {
        k
        for k in _changed(ws_before, ws_after)
        if not k.startswith(ALLOWED_CHANGES) and not k.endswith("/.lock") and k not in changed
    }
    assert not unexpected, unexpected
    for cid, state in TEMPLATE_STATES.items():
        path = ws / "campaigns" / cid / "campaign.json"
        if (
            path.read_bytes() == ws_before.get(f"campaigns/{cid}/campaign.json")
            and f"campaigns/{cid}/campaign.json" not in changed
        ):
            _state_is(cid, state)(ws)
    assert sorted(p.name for p in (ws / "campaigns").iterdir()) == sorted(TEMPLATE_STATES)


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.id for c in ACCEPTED])
def test_accepted_input_says_what_rea_did(box: Path, case: Accepted) -> None:
    ws = box / "ws"
    if case.setup is not None:
        case.setup(ws)
    outside_before = {k: v for k, v in _files(box).items() if not k.startswith("ws")}
    done = _rea(ws, _expand(case.args, box), box)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    case.check(ws, done)
    assert {k: v for k, v in _files(box).items() if not k.startswith("ws")} == outside_before
    assert not [p for p in ws.rglob("*.tmp")], "half-written file left"


@pytest.mark.parametrize("case", REPORTED, ids=[c.id for c in REPORTED])
def test_reported_input_is_a_finding_and_changes_nothing(box: Path, case: Reported) -> None:
    ws = box / "ws"
    if case.setup is not None:
        case.setup(ws)
    outside_before = _outside(box)
    ws_before = _files(ws)

    done = _rea(ws, _expand(case.args, box), box)

    both = done.stdout + done.stderr
    assert "Traceback" not in both and BUG not in both, both
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    for needle in case.needles:
        assert needle in done.stdout, done.stdout
    assert all(ch.isprintable() or ch == "\n" for ch in done.stdout), "a control character printed"
    _assert_nothing_changed(box, outside_before, ws_before, case.changed)
