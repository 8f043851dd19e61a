"""`rea schedule ...`: recurring campaigns that `rea tick` starts when due. Parse, call, print."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from rea_cli.cli.common import console, handle_errors, print_json, workspace
from rea_cli.errors import RefusedError

app = typer.Typer(
    help="Recurring campaigns: a template (model, dataset, metric, profile, goal) with a cron "
    "expression or `every N days`, run by `rea tick` under a standing approval.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="Schedule name (letters, digits, - and _).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _say(text: str) -> None:
    console.print(escape(text), highlight=False, soft_wrap=True)


def _now() -> Any:
    from rea_cli.clock import now

    return now()


@app.command("add")
@handle_errors
def add_cmd(
    ctx: typer.Context,
    name: NameArg,
    model: Annotated[str, typer.Option(help="Model family, as for `rea plan`.")],
    dataset: Annotated[str, typer.Option(help="Data set, as for `rea plan`.")],
    cron: Annotated[
        str | None, typer.Option(help="Cron expression (five fields, UTC), e.g. '0 6 * * 1'.")
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(help="Or a fixed interval, 1h to 366d: 7d, 1d, 12h (first run at once)."),
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="auc, ne or logloss (default from rea.toml).")
    ] = None,
    profile: Annotated[str, typer.Option(help="tiny, demo or standard.")] = "standard",
    goal: Annotated[str, typer.Option(help="What the runs are for (free text).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Add a campaign template with its cadence; it runs nothing before `rea schedule approve`."""
    from rea_cli.app.schedules import add_schedule, parse_every

    t = add_schedule(
        workspace(ctx),
        name,
        model=model,
        dataset=dataset,
        cron=cron,
        every_days=parse_every(every) if every is not None else None,
        metric=metric,
        profile=profile,
        goal=goal,
        now=_now(),
    )
    if as_json:
        print_json(t.model_dump(mode="json"))
        return
    _say(f"schedule {name}: {t.model} on {t.dataset}, {t.cadence}")
    _say(
        f"next: rea schedule approve {name} --run-budget 4gpu-h --period-budget 20gpu-h "
        "(a standing approval; then `rea tick` from cron starts the runs)"
    )


@app.command("approve")
@handle_errors
def approve_cmd(
    ctx: typer.Context,
    name: NameArg,
    run_budget: Annotated[str, typer.Option(help="GPU budget of each run, e.g. 4gpu-h.")],
    period_budget: Annotated[
        str, typer.Option(help="GPU budget of all runs started in one period, e.g. 20gpu-h.")
    ],
    period: Annotated[str, typer.Option(help="day, week or month (UTC).")] = "month",
    valid_until: Annotated[
        str | None,
        typer.Option(help="Last day the approval covers (ISO date; default: 90 days from now)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Standing approval of every run of the template as it is now (bound to its hash)."""
    from datetime import timedelta

    from rea_cli.app.schedules import approve_schedule
    from rea_cli.cli.budgets import budget_hours, say_note
    from rea_cli.clock import parse_time
    from rea_cli.errors import UsageError

    if period not in ("day", "week", "month"):
        raise UsageError(f"--period {period!r}: use day, week or month")
    now = _now()
    if valid_until is None:
        until = now + timedelta(days=90)
    else:  # an empty --valid-until is an error, not the default
        until = parse_time(valid_until, "--valid-until")
        if len(valid_until.strip()) == 10:
            until += timedelta(days=1, microseconds=-1)  # a date covers that whole day
    run_arg = budget_hours(run_budget, "--run-budget")
    period_arg = budget_hours(period_budget, "--period-budget")
    run_h, period_h = run_arg.hours, period_arg.hours
    if not yes and not typer.confirm(
        f"Approve every run of schedule {name}: {run_h:g} GPU-h per run, at most {period_h:g} "
        f"GPU-h per {period}, until {until:%Y-%m-%d %H:%M} UTC?"
    ):
        raise RefusedError("not approved (answered no)")
    a = approve_schedule(
        workspace(ctx),
        name,
        run_gpu_hours=run_h,
        period_gpu_hours=period_h,
        period=period,  # type: ignore[arg-type]
        valid_until=until,
        now=now,
    )
    say_note(run_arg, period_arg)
    if as_json:
        print_json(a.model_dump(mode="json"))
        return
    _say(
        f"approved schedule {name}: {a.run_gpu_hours:g} GPU-h per run, {a.period_gpu_hours:g} "
        f"GPU-h per {a.period}, until {a.valid_until} (by {a.by})"
    )


@app.command("list")
@handle_errors
def list_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Schedules with their approval, budget used this period, runs and when the next is due."""
    from rea_cli.app.schedules import list_schedules

    rows = list_schedules(workspace(ctx), _now())
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    if not rows:
        _say("no schedule; add one: rea schedule add NAME --model M --dataset D --every 7d")
        return
    for r in rows:  # one block per schedule: reads at 80 columns
        state = "paused" if r.paused else "active"
        _say(f"{r.name} ({state}): {r.model} on {r.dataset}, {r.cadence}")
        if r.approved_by:
            valid = "valid" if r.approval_valid else "NOT VALID (re-approve)"
            _say(
                f"  approval: {r.approved_by}, {r.run_gpu_hours:g} GPU-h/run, "
                f"{r.used_this_period:.3f} of {r.period_gpu_hours:g} GPU-h used this "
                f"{r.period}, until {(r.valid_until or '')[:10]}, {valid}"
            )
        else:
            _say(f"  approval: none (rea schedule approve {r.name})")
        for run in r.runs[-3:]:
            _say(f"  run: {run['campaign_id']} {run['state']} (due {run['due_at']})")
        _say(f"  now: {r.note}")


@app.command("pause")
@handle_errors
def pause_cmd(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    """Stop starting runs of this schedule (a run already started goes on)."""
    _set_paused(ctx, name, True, as_json)


@app.command("resume")
@handle_errors
def resume_cmd(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    """Start runs of a paused schedule again (the next due one, not every missed one)."""
    _set_paused(ctx, name, False, as_json)


def _set_paused(ctx: typer.Context, name: str, paused: bool, as_json: bool) -> None:
    from rea_cli.app.schedules import set_paused

    state = set_paused(workspace(ctx), name, paused)
    if as_json:
        print_json({"name": name, **state.model_dump(mode="json")})
        return
    _say(f"schedule {name} {'paused' if paused else 'active again'}")


@app.command("remove")
@handle_errors
def remove_cmd(ctx: typer.Context, name: NameArg, as_json: JsonOpt = False) -> None:
    """Remove a schedule; the campaigns it started stay (a running one goes on)."""
    from rea_cli.app.schedules import remove_schedule

    runs = remove_schedule(workspace(ctx), name)
    if as_json:
        print_json({"name": name, "removed": True, "campaigns": runs})
        return
    _say(f"removed schedule {name}; its {len(runs)} campaign(s) stay in campaigns/")
