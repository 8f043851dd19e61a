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

from rea_cli.errors import ReaError, os_error
from rea_cli.fsutil import secure_umask
from rea_cli.workspace import Workspace, find_workspace

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)
# the line of an error that is rea's own fault, not the input's (tests look for it)
BUG = "this is a bug in rea"


def handle_errors(fn: F) -> F:
    """Turn rea's exceptions into one line on stderr and the exception's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ReaError as exc:
            report_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # a full disk, a file another user owns: one line naming it
            log.debug("OS error", exc_info=True)
            report_error(os_error(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # never a traceback to the user; -vv logs it
            log.debug("unexpected error", exc_info=True)
            report_error(
                ReaError(
                    f"unexpected {type(exc).__name__}: {_first_line(exc)}; {BUG}: please "
                    "report it with the output of the same command run with -vv"
                )
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else "no message"


def one_line(text: str) -> str:
    """User text as one printable line: no newline, no terminal escape sequence."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def report_error(exc: ReaError) -> None:
    """One line on stderr; the message is text, never rich markup (it may contain [brackets])."""
    err_console.print(
        f"[bold red]error:[/] {escape(one_line(str(exc)))}", highlight=False, soft_wrap=True
    )


def workspace(ctx: typer.Context) -> Workspace:
    """The workspace chosen by --workspace / $REA_WORKSPACE / the current directory."""
    obj = ctx.find_root().obj
    if isinstance(obj, Workspace):
        return obj
    ws = find_workspace(obj.get("workspace") if isinstance(obj, dict) else None)
    if ws.settings.shared:  # validates rea.toml once, before any command runs
        secure_umask(shared=True)
    ctx.find_root().obj = ws
    return ws


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def usage_error(exc: typer.TyperException) -> int:
    """A command-line parsing error (unknown option, missing argument) as one line."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    hint = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
    report_error(ReaError(" ".join(message.split()).rstrip(".") + hint))
    return int(getattr(exc, "exit_code", 2))
