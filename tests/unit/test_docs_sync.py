"""The README's commands and the docs' option tables agree with `--help`.

- every `rea ...` command line in README.md and docs/*.md (code blocks and inline code) names an
  existing command, and each `--option` it uses exists on that command (or on `rea` itself);
- an option table under `<!-- options: rea CMD -->` lists exactly that command's options;
- no document points to a file of the repository that does not exist.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main

from rea_cli.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CLI = typer.main.get_command(app)


def _options(cmd: Any) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}


ROOT_OPTIONS = _options(CLI)


def _resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The command named by the leading words, and the words after it."""
    cmd, rest = CLI, list(words)
    while rest and getattr(cmd, "commands", None) and rest[0] in cmd.commands:
        cmd = cmd.commands[rest.pop(0)]
    return cmd, rest


def _command_lines() -> list[tuple[str, str]]:
    """(doc, command line) for every `rea ...` in code blocks and inline code."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
        indented = re.findall(r"(?m)^(?: {4}|\t)(rea .*)$", text)
        inline = re.findall(r"`(rea [^`]+)`", text)
        lines = [ln for b in blocks for ln in b.splitlines()] + indented + inline
        for line in lines:
            line = line.strip()
            if line.startswith("$ "):
                line = line[2:]
            if line.startswith("rea ") or line.startswith("(wake-up job) rea "):
                found.append((doc.name, line.split("rea ", 1)[1]))
    return found


def _words(line: str) -> list[str]:
    line = re.split(r"\s+#\s|\s{2,}#", line)[0]  # a trailing comment
    line = re.split(r"\s+(\||>>|&&|;)\s+", line)[0]
    try:
        return shlex.split(line)
    except ValueError:
        return line.split()


COMMAND_LINES = _command_lines()


@pytest.mark.parametrize(
    ("doc", "line"), COMMAND_LINES, ids=[f"{d}:{ln}" for d, ln in COMMAND_LINES]
)
def test_documented_commands_exist_with_their_options(doc: str, line: str) -> None:
    words = [w for w in _words(line) if w not in ("...", "|")]
    # global options before the command
    while words and words[0] in ROOT_OPTIONS:
        words = words[2:] if words[0] in ("--workspace", "-w") else words[1:]
    cmd, rest = _resolve(words)
    assert cmd is not CLI or not words, f"{doc}: `rea {line}`: no such command"
    if getattr(cmd, "commands", None):
        assert not rest or rest[0].startswith("-"), f"{doc}: `rea {line}`: unknown subcommand"
    known = _options(cmd) | ROOT_OPTIONS
    for word in rest:
        option = word.split("=", 1)[0]
        if option.startswith("--"):
            assert option in known, f"{doc}: `rea {line}`: {option} is not an option of it"


def _tables() -> list[tuple[str, str, set[str]]]:
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for m in re.finditer(r"<!-- options: rea ([a-z ]+?) -->\n((?:\|.*\n)+)", text):
            rows = m.group(2).splitlines()[2:]  # past the header and its rule
            opts = set()
            for row in rows:
                first = row.split("|")[1]
                opts |= set(re.findall(r"(--[a-z][a-z-]*|(?<![\w-])-[a-z])\b", first))
            out.append((doc.name, m.group(1), opts))
    return out


TABLES = _tables()


def test_there_are_option_tables() -> None:
    names = {name for _, name, _ in TABLES}
    assert {"plan", "schedule add", "schedule approve", "tick", "doctor"} <= names


@pytest.mark.parametrize(("doc", "name", "opts"), TABLES, ids=[f"{d}:{n}" for d, n, _ in TABLES])
def test_option_tables_match_help(doc: str, name: str, opts: set[str]) -> None:
    cmd, rest = _resolve(name.split())
    assert not rest, f"{doc}: no command `rea {name}`"
    actual = _options(cmd) - {"--help"}
    assert opts == actual, (
        f"{doc}: the option table of `rea {name}` lists {sorted(opts)}, --help has {sorted(actual)}"
    )


def test_docs_point_only_to_files_that_exist() -> None:
    for doc in DOCS:
        text = doc.read_text()
        assert "DESIGN.md" not in text, f"{doc.name} points to DESIGN.md, which is not in the repo"
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (doc.parent / target).exists(), f"{doc.name}: link to missing {target}"
