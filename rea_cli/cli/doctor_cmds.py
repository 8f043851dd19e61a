"""`rea doctor`: the preflight. Parse, call, print."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from rea_cli.cli.common import console, handle_errors, one_line, print_json, workspace

STYLE = {"OK": "green", "WARN": "yellow", "FAIL": "bold red", "SKIP": "dim"}


def register(app: typer.Typer) -> None:
    app.command()(doctor)


@handle_errors
def doctor(
    ctx: typer.Context,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            help="A data set to check (repeatable; default: those of the workspace's "
            "campaigns and schedules, else movielens-100k)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check everything a campaign relies on, one line each with OK/WARN/FAIL and the fix:
    workspace, locks, insights DB, disk, data, Slurm request and node fit, the tick entry."""
    from rea_cli.app.doctor import run_checks

    checks = run_checks(workspace(ctx), dataset)
    failed = [c for c in checks if c.verdict == "FAIL"]
    if as_json:
        print_json({"ok": not failed, "checks": [c.to_dict() for c in checks]})
    else:
        for c in checks:  # a check's text may hold user input (a data set name): one line each
            console.print(
                f"[{STYLE[c.verdict]}]{c.verdict:<4}[/] {escape(one_line(c.name))}: "
                f"{escape(one_line(c.detail))}",
                highlight=False,
            )
            if c.fix and c.verdict in ("FAIL", "WARN"):
                console.print(f"     fix: {escape(one_line(c.fix))}", highlight=False)
        console.print(
            f"{len(failed)} check(s) failed" if failed else "all checks passed",
            highlight=False,
        )
    if failed:
        raise typer.Exit(1)
