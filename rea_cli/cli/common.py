"""What every command shares: the workspace from the context, error handling, consoles."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from rea_cli.errors import ReaError
from rea_cli.workspace import Workspace, find_workspace

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Turn rea's exceptions into one line on stderr and the exception's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ReaError as exc:
            report_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def report_error(exc: ReaError) -> None:
    """One line on stderr; the message is text, never rich markup (it may contain [brackets])."""
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)


def workspace(ctx: typer.Context) -> Workspace:
    """The workspace chosen by --workspace / $REA_WORKSPACE / the current directory."""
    obj = ctx.find_root().obj
    if isinstance(obj, Workspace):
        return obj
    ws = find_workspace(obj.get("workspace") if isinstance(obj, dict) else None)
    ws.settings  # noqa: B018 - validate rea.toml once, before any command runs
    ctx.find_root().obj = ws
    return ws


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
