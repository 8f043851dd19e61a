"""Budgets typed on the command line: a bare number has no unit, so rea asks for one at a
terminal, and elsewhere says which unit it read."""

from __future__ import annotations

import re
import sys

import typer

from rea_cli.cli.common import err_console
from rea_cli.planner.plan import parse_budget

_BARE = re.compile(r"\s*\d+(?:\.\d+)?\s*")


def budget_hours(text: str, option: str = "--budget") -> float:
    """GPU-hours of a budget option; a bare `4` is asked about (TTY) or read as 4 GPU-h."""
    if _BARE.fullmatch(text):
        number = text.strip()
        if sys.stdin.isatty() and sys.stdout.isatty():
            unit = typer.prompt(f"{option} {number}: GPU-hours or GPU-minutes? [gpu-h/gpu-min]")
            return parse_budget(f"{number}{unit.strip()}")  # an unknown unit: the usual error
        err_console.print(
            f"note: {option} {number} has no unit: read as {number} GPU-hours "
            f"(write {number}gpu-h, or {number}gpu-min for minutes)",
            highlight=False,
            soft_wrap=True,
        )
    return parse_budget(text)
