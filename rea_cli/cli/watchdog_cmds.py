"""Watchdog commands: `rea tick` and `rea cron install/remove`. Parse, call, print."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from rea_cli.cli.common import console, handle_errors, print_json, workspace

if TYPE_CHECKING:
    from rea_cli.app.watchdog import CronTool

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ScrontabOpt = Annotated[
    bool,
    typer.Option(
        "--scrontab/--crontab",
        help="Use Slurm's scrontab (for sites where cron is not allowed on login nodes) "
        "instead of the user's crontab.",
    ),
]
ApplyOpt = Annotated[
    bool, typer.Option("--apply", help="Change the table (default: only print what to do).")
]

cron_app = typer.Typer(
    help="Run `rea tick` every few minutes from cron or scrontab.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command()(tick)
    app.add_typer(cron_app, name="cron")


def _tool(scrontab: bool) -> CronTool:
    return "scrontab" if scrontab else "crontab"


def _say(text: str) -> None:
    console.print(escape(text), highlight=False, soft_wrap=True)


@handle_errors
def tick(
    ctx: typer.Context,
    as_json: JsonOpt = False,
    now: Annotated[
        str | None,
        typer.Option(
            help="Judge which recurring campaigns are due at this ISO time instead of now "
            "(tests, dry checks; also $REA_NOW). Jobs and budgets keep the real clock.",
        ),
    ] = None,
) -> None:
    """Check every campaign once: resume those whose wake-up is gone, pause those over budget,
    report stuck ones; then start the recurring campaigns that are due. Safe to run at any time
    (cron, scrontab, by hand)."""
    from rea_cli.app.watchdog import tick as run_tick
    from rea_cli.clock import now as clock_now

    report = run_tick(workspace(ctx), now=clock_now(now))
    if as_json:
        print_json(report.to_dict())
    else:
        _say(f"tick {report.at}: {report.message}")
        for c in report.campaigns:
            _say(f"  {c.campaign_id} [{c.state}] {c.action}: {c.reason}")
            for note in c.stuck:
                _say(f"    stuck: {note}")
        for sch in report.schedules:
            _say(f"  schedule {sch.name} {sch.action}: {sch.reason}")
            for note in sch.stuck:
                _say(f"    stuck: {note}")
    if report.errors:
        raise typer.Exit(1)


@cron_app.command("install")
@handle_errors
def cron_install(
    ctx: typer.Context,
    every: Annotated[int, typer.Option("--every", help="Minutes between ticks (1-60).")] = 5,
    scrontab: ScrontabOpt = False,
    apply: ApplyOpt = False,
) -> None:
    """Print the crontab (or scrontab) entry running `rea tick`; --apply installs it."""
    from rea_cli.app.watchdog import install_cron, workspace_cron_block

    ws = workspace(ctx)
    tool = _tool(scrontab)
    if not apply:
        block = workspace_cron_block(ws, every, tool)
        typer.echo(block, nl=False)
        _say(
            f"# install it with `rea cron install --apply{' --scrontab' if scrontab else ''}`"
            f" or paste it into `{tool} -e`"
        )
        return
    change = install_cron(ws, every, tool)
    verb = "installed" if change.changed else "already installed"
    _say(f"{verb} in your {tool}: rea tick every {every} min for {ws.root}")
    _say(f"log: {ws.state_dir / 'tick.log'}")


@cron_app.command("remove")
@handle_errors
def cron_remove(ctx: typer.Context, scrontab: ScrontabOpt = False, apply: ApplyOpt = False) -> None:
    """Remove this workspace's `rea tick` entry from the crontab (or scrontab)."""
    from rea_cli.app.watchdog import remove_cron

    ws = workspace(ctx)
    tool = _tool(scrontab)
    if not apply:
        _say(
            f"would remove the rea tick entry for {ws.root} from your {tool}; "
            f"run `rea cron remove --apply{' --scrontab' if scrontab else ''}`"
        )
        return
    change = remove_cron(ws, tool)
    _say(f"removed from your {tool}" if change.changed else f"no rea tick entry for {ws.root}")
