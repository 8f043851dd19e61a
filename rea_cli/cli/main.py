"""The `rea` command: global options, then one module per command group."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from typer._click.exceptions import NoArgsIsHelpError

from rea_cli import __version__
from rea_cli.cli import (
    campaign_cmds,
    common,
    doctor_cmds,
    helpfmt,
    insights_cmds,
    schedule_cmds,
    watchdog_cmds,
)
from rea_cli.errors import ReaError
from rea_cli.fsutil import secure_umask

helpfmt.install()
app = typer.Typer(
    name="rea",
    help="rea: a Slurm-native Ranking Engineer Agent. Plan, approve and launch budgeted "
    "experiment campaigns on ranking models; rea sleeps between phases and wakes up by itself.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rea {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace folder (default: $REA_WORKSPACE, or the current "
            "directory or its nearest parent with a rea.toml).",
        ),
    ] = None,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            show_default=False,
            help="More logging: -v for info, -vv for debug.",
        ),
    ] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    common.setup_logging(verbose)
    secure_umask()  # nothing rea (or a trial it starts) writes is ever world-writable
    # resolved by each command that needs it (so `rea plan --help` works anywhere)
    ctx.obj = {"workspace": workspace}


campaign_cmds.register(app)


app.add_typer(insights_cmds.app, name="insights")
watchdog_cmds.register(app)
app.add_typer(schedule_cmds.app, name="schedule")
doctor_cmds.register(app)


def main() -> None:
    """The `rea` command. Parsing errors are one line too, like every other error."""
    try:
        # prog_name: also under `python -m rea_cli`, help and completion say `rea`
        code = app(prog_name="rea", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Abort:
        common.report_error(ReaError("aborted"))
        sys.exit(1)
    except typer.TyperException as exc:  # an unknown option, a missing argument, a bad value
        sys.exit(common.usage_error(exc))
    sys.exit(code if isinstance(code, int) else 0)
