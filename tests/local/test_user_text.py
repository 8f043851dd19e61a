"""User text is text: a workspace path, a goal and a hypothesis title holding rich markup
(`[/]`, `[bold]`) and shell syntax (`$(touch pwned)`) print literally in every command, and every
path printed or written is shell-quoted, so nothing runs and nothing crashes after the campaign or
the workspace was written. `rea launch` and `rea status` say once that nothing runs `rea tick`
while no cron entry is installed; a workspace hypothesis that is not planned is reported."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import campaign_doc, make_workspace, run_rea, wait_for

pytestmark = pytest.mark.slow

NASTY = "ws [/] [bold]x $(touch pwned)"
WHY = "planted [/] by the test [bold]now"
GOAL = "raise [/] AUC [bold]now"
STRATEGY = f"""
[[strategy]]
id = "emb_big"
category = "capacity"
name = "Bigger [/] embeddings [bold]yes"
rationale = "why [/] not"
reference = "the test [/]"
families = ["dcn_v2"]
observation = "{WHY}"
prior = {{ mean = 0.01, sd = 0.01 }}

[strategy.delta]
"model.embedding_dim" = {{ levels = [32] }}
"""
HYPOTHESES = """
[[hypothesis]]
id = "no_such_knob"
title = "A key no model has"
rationale = "planted by the test: must be reported, not dropped silently"
delta = { "model.no_such_key" = 3 }
prior = 1.0
"""
HINT = "nothing runs `rea tick` for this workspace"


def _clean(done: subprocess.CompletedProcess[str]) -> str:
    """The command succeeded without a traceback (a MarkupError would be one)."""
    both = done.stdout + done.stderr
    assert done.returncode == 0, both
    assert "Traceback" not in both and "MarkupError" not in both, both
    return " ".join(done.stdout.split())  # rich wraps long lines: compare words


def _approve_interactively(ws: Path, cid: str) -> subprocess.CompletedProcess[str]:
    """`rea approve` without --yes prints the plan and asks (answered yes)."""
    cmd = [sys.executable, "-m", "rea_cli", "--workspace", str(ws), "approve", cid]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(cmd, input="y\n", capture_output=True, text=True, env=env, timeout=120)


def _fake_crontab(bin_dir: Path, table: Path) -> dict[str, str]:
    bin_dir.mkdir()
    script = bin_dir / "crontab"
    script.write_text(
        "#!/bin/sh\n"
        f"T={shlex.quote(str(table))}\n"
        'if [ "$1" = "-l" ]; then\n'
        '  [ -f "$T" ] || { echo "no crontab for $(id -un)" >&2; exit 1; }\n'
        '  cat "$T"; exit 0\n'
        "fi\n"
        'cp "$1" "$T"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def _pwned(tmp_path: Path) -> list[Path]:
    return [*tmp_path.rglob("pwned"), *Path.cwd().glob("pwned")]


def test_markup_and_shell_syntax_in_user_text(tmp_path: Path) -> None:
    root = tmp_path / NASTY
    done = run_rea(None, "init", str(root), "--backend", "local")
    out = _clean(done)
    assert str(root) in out
    (next_line,) = [x for x in done.stdout.splitlines() if x.startswith("next: ")]
    assert shlex.split(next_line)[3] == str(root)  # `rea --workspace <path>`, quoted
    # the tests' small settings, as make_workspace writes them
    (root / "rea.toml").write_text((make_workspace(tmp_path / "settings") / "rea.toml").read_text())
    (root / "hypotheses.toml").write_text(HYPOTHESES)
    (root / "knowledge").mkdir()
    (root / "knowledge" / "mine.toml").write_text(STRATEGY)
    ws, cid = root, "mk"

    # plan: the title and the goal literally; the invalid workspace hypothesis reported (#14)
    plan = _clean(
        run_rea(ws, "plan", "--model", "dcn_v2", "--dataset", "synthetic", "--budget", "2gpu-h",
                "--profile", "tiny", "--id", cid, "--goal", GOAL)
    )  # fmt: skip
    assert f"why: {WHY}" in plan and GOAL in plan
    assert "not planned: no_such_knob (legacy):" in plan
    dropped = json.loads((ws / "campaigns" / cid / "plan.json").read_text())["dropped"]
    (reported,) = [d for d in dropped if d["hypothesis_id"] == "no_such_knob"]
    assert reported["source"] == "legacy" and "no_such_key" in reported["reason"]
    assert reported["reason"] in plan

    assert f"why: {WHY}" in _clean(_approve_interactively(ws, cid))

    # dry run: every path quoted, so copying a line runs nothing (#7)
    dry = run_rea(ws, "launch", cid, "--dry-run")
    _clean(dry)
    lines = [shlex.split(x.strip()[1:-1]) for x in dry.stdout.splitlines() if x.startswith("(cd ")]
    tasks = [argv for argv in lines if "ranking_models.train" in argv]
    (wake,) = [argv for argv in lines if "resume" in argv]
    assert tasks
    for argv in tasks:  # (cd <trial dir> && ... python -m ranking_models.train <spec>)
        assert argv[1].startswith(str(ws / "campaigns" / cid / "trials")), argv
        assert argv[-1] == str(Path(argv[1]) / "spec.json"), argv
    assert wake[wake.index("--workspace") + 1] == str(ws)

    # the cron entry: the command line gives back the path as it is
    cron = run_rea(ws, "cron", "install")
    _clean(cron)
    (entry,) = [x for x in cron.stdout.splitlines() if x.startswith("*/5 ")]
    words = shlex.split(entry)
    assert words[words.index("--workspace") + 1] == str(ws)
    assert words[words.index(">>") + 1] == str(ws / ".rea" / "tick.log")

    launch = _clean(run_rea(ws, "launch", cid))
    assert launch.count(HINT) == 1  # no cron entry: said once (#13)

    status = _clean(run_rea(ws, "status", cid))
    assert status.count(HINT) == 1
    listing = _clean(run_rea(ws, "status"))
    assert str(ws) in listing and HINT not in listing

    # once installed, nothing more is said
    path_env = _fake_crontab(tmp_path / "bin", tmp_path / "table")
    _clean(run_rea(ws, "cron", "install", "--apply", env=path_env))
    assert HINT not in _clean(run_rea(ws, "status", cid, env=path_env))

    # the first wake-up runs the resume step in this workspace (local backend: a detached
    # waiter); then the campaign is stopped and every other command prints it as it is
    journal = ws / "campaigns" / cid / "journal.jsonl"
    wait_for(lambda: '"resume_done"' in journal.read_text(), 300, "the first wake-up")
    tick = _clean(run_rea(ws, "tick"))
    assert f"{cid} [" in tick
    _clean(run_rea(ws, "cancel", cid))
    watch = _clean(run_rea(ws, "watch", cid))
    assert f"{cid} is CANCELLED" in watch
    report = _clean(run_rea(ws, "report", cid))
    assert str(ws / "campaigns" / cid) in report
    assert campaign_doc(ws, cid)["goal"] == GOAL
    assert _pwned(tmp_path) == [], "a path was run as shell code"
