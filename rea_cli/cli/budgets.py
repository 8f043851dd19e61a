"""Budgets typed on the command line: a bare number has no unit, so rea asks for one at a
terminal, and elsewhere says which unit it read (once the command has succeeded: a failing
command prints its one error line and nothing else)."""

from __future__ import annotations

import re
import sys
from typing import NamedTuple

import typer

from rea_cli.app.planning import parse_budget
from rea_cli.cli.common import err_console

_BARE = re.compile(r"\s*\d+(?:\.\d+)?\s*")


class BudgetArg(NamedTuple):
    hours: float
    note: str | None  # how a bare number was read; print it with `say_note` after success


def budget_hours(text: str, option: str = "--budget") -> BudgetArg:
    """GPU-hours of a budget option; a bare `4` is asked about (TTY) or read as 4 GPU-h."""
    if not _BARE.fullmatch(text):
        return BudgetArg(parse_budget(text), None)
    number = text.strip()
    if sys.stdin.isatty() and sys.stdout.isatty():
        unit = typer.prompt(f"{option} {number}: GPU-hours or GPU-minutes? [gpu-h/gpu-min]")
        return BudgetArg(parse_budget(f"{number}{unit.strip()}"), None)  # unknown unit: error
    hours = parse_budget(text)  # an invalid number: its error alone
    note = (
        f"note: {option} {number} has no unit: read as {number} GPU-hours "
        f"(write {number}gpu-h, or {number}gpu-min for minutes)"
    )
    return BudgetArg(hours, note)


def say_note(*budgets: BudgetArg) -> None:
    for b in budgets:
        if b.note:
            err_console.print(b.note, highlight=False, soft_wrap=True)
