"""Every command has help text and is documented in README.md or docs/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from rea_cli.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> list[tuple[str, Any]]:
    root = typer.main.get_command(app)
    found: list[tuple[str, Any]] = []

    def walk(prefix: str, cmd: Any) -> None:
        if getattr(cmd, "commands", None):
            for name, sub in cmd.commands.items():
                walk(f"{prefix} {name}".strip(), sub)
        else:
            found.append((prefix, cmd))

    walk("", root)
    return found


COMMANDS = _commands()
DOCS = "\n".join(p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")])


def test_the_expected_commands_exist() -> None:
    names = {name for name, _ in COMMANDS}
    expected = {
        "init",
        "plan",
        "approve",
        "launch",
        "resume",
        "status",
        "watch",
        "cancel",
        "review",
        "report",
        "tick",
        "cron install",
        "insights sql",
        "insights effects",
        "insights export",
        "insights path",
    }
    assert expected <= names


@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
def test_command_has_help_and_docs(name: str) -> None:
    cmd = dict(COMMANDS)[name]
    assert (cmd.help or "").strip(), f"rea {name} has no help text"
    result = CliRunner().invoke(app, [*name.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert f"rea {name}" in DOCS, f"`rea {name}` is not documented in README.md or docs/"
