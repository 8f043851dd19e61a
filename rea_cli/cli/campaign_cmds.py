"""Campaign commands: init, plan, approve, launch, resume, status, watch, cancel, review, report.

Each parses, calls one core function, prints. No logic here.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from rea_cli.cli.common import console, handle_errors, print_json, workspace
from rea_cli.errors import RefusedError, UsageError

CampaignArg = Annotated[str, typer.Argument(help="Campaign id (see `rea status`).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def register(app: typer.Typer) -> None:
    for fn in (init, plan, approve, launch, resume, status, watch, cancel, review, report):
        app.command()(fn)


@handle_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Workspace folder to create.")] = Path("."),
    backend: Annotated[
        str | None, typer.Option(help="local or slurm (default: slurm when sbatch is on PATH).")
    ] = None,
    shared: Annotated[
        bool,
        typer.Option(
            "--shared", help="For a group: setgid, group-writable folders; rea uses umask 002."
        ),
    ] = False,
    group: Annotated[
        str | None, typer.Option(help="With --shared: the group owning the workspace.")
    ] = None,
) -> None:
    """Create a workspace: rea.toml with commented defaults, campaigns/, the insights DB."""
    from rea_cli.app.setup import init as init_workspace

    done = init_workspace(directory, backend=backend, shared=shared, group=group)
    ws = done.workspace
    kind = ", shared with its group" if shared else ""
    console.print(
        f"workspace ready at {escape(str(ws.root))} (backend: {ws.settings.backend}{kind})",
        highlight=False,
    )
    if done.note:
        console.print(done.note, highlight=False, markup=False)
    console.print(
        f"next: rea --workspace {shlex.quote(str(ws.root))} plan --model dcn_v2 "
        "--dataset movielens-100k --budget 4gpu-h",
        highlight=False,
        markup=False,
    )


@handle_errors
def plan(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Option(help="Model family: lr, fm, wide_deep, deepfm, dcn_v2, dlrm, finalmlp.")
    ],
    dataset: Annotated[
        str,
        typer.Option(
            help="movielens-100k, synthetic, criteo:FILE.tsv or a schema FILE.toml/.yaml."
        ),
    ],
    budget: Annotated[str, typer.Option(help="Approved GPU budget, e.g. 4gpu-h or 90gpu-min.")],
    goal: Annotated[
        str, typer.Option(help="What the campaign is for (free text, at most 2,000 characters).")
    ] = "",
    metric: Annotated[
        str | None, typer.Option(help="auc, ne or logloss (default from rea.toml).")
    ] = None,
    profile: Annotated[
        str, typer.Option(help="tiny (tests), demo (minutes on a CPU) or standard.")
    ] = "standard",
    campaign_id: Annotated[
        str | None, typer.Option("--id", help="Campaign id (default: generated).")
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            min=0,
            max=100_000,
            help="The campaign's seed: its trials' seeds and the search's sampler "
            "(the same seed and data reuse identical trials measured before).",
        ),
    ] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Propose hypotheses and plan validation -> combination -> exploitation within the budget."""
    from rea_cli.app.planning import plan_campaign
    from rea_cli.cli.budgets import budget_hours, say_note

    ws = workspace(ctx)
    approved = budget_hours(budget)
    c, p = plan_campaign(
        ws,
        model=model,
        dataset=dataset,
        budget_gpu_hours=approved.hours,
        goal=goal,
        metric=metric,
        profile=profile,
        campaign_id=campaign_id,
        seed=seed,
    )
    say_note(approved)
    if as_json:
        print_json({"campaign_id": c.campaign_id, "plan": p.dump()})
        return
    _print_plan(c.campaign_id, p)
    console.print(f"\nnext: review the plan, then [bold]rea approve {c.campaign_id}[/]")


def _print_plan(cid: str, p: Any) -> None:
    say = console.print
    say(f"[bold]Campaign {escape(cid)}[/]: {escape(p.goal)}")
    say(
        f"baseline: {p.model_family} on {escape(p.dataset)}, metric {p.metric} ({p.direction}); "
        f"data: {p.data_profile.get('n_rows', '?')} rows, traits {p.traits or 'none'}",
        highlight=False,
    )
    shown = 15
    say(
        f"\n[bold]Hypotheses[/], ranked ({len(p.ranking)} apply; validation screens the top "
        f"{p.engine.screen} after re-ranking with the baseline's learning curve):"
    )
    for i, r in enumerate(p.ranking[:shown], 1):
        h, n = p.hypotheses[r.hypothesis_id], r.numbers
        hist = f"{n.history_mean:+.2%} over {n.history_n} pairs" if n.history_n else "none"
        say(
            f"{i:3d}. {escape(r.hypothesis_id)}  score {n.score:.4f}  prior {n.prior_mean:+.2%}"
            f" ±{n.prior_sd:.2%}  history {hist}",
            highlight=False,
        )
        say(f"     change: {h.title}", highlight=False, markup=False)
        say(f"     why: {h.trigger or 'research prior'}", highlight=False, markup=False)
    if len(p.ranking) > shown:
        say(f"  ... and {len(p.ranking) - shown} more (`rea plan --json` lists them all)")
    own = [d for d in p.dropped if d.source in ("workspace", "legacy")]
    for d in own:
        say(
            f"  not planned: {d.hypothesis_id or d.strategy} ({d.source}): {d.reason}",
            highlight=False,
            markup=False,
        )
    te = p.engine.budget_te
    phases = Table(title=f"Plan (budget {p.budget_gpu_hours:g} GPU-h = {te:.1f} baseline trials)")
    for col in ("phase", "trials", "baseline trials", "est. GPU-h", "worst case GPU-h"):
        phases.add_column(col)
    for ph in p.phases:
        phases.add_row(
            ph.phase,
            str(ph.max_trials),
            f"{ph.trial_equivalents:.1f}",
            f"{ph.estimated_gpu_hours:.3f}",
            f"{ph.reserved_gpu_hours:.3f}",
        )
    say(phases)
    for ph in p.phases:
        say(f"  {ph.phase}: {ph.rule}", highlight=False, markup=False)
    say(
        f"total: estimated {p.estimated_gpu_hours:.3f} GPU-h; each round is submitted only "
        "when its worst case fits what is left of the budget",
        highlight=False,
    )


@handle_errors
def approve(
    ctx: typer.Context,
    campaign: CampaignArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Approve the plan and its budget (human checkpoint 1; bound to the plan's hash)."""
    from rea_cli.app.lifecycle import approve_campaign, load
    from rea_cli.app.resume import load_plan

    ws = workspace(ctx)
    store, c = load(ws, campaign)
    if not yes:
        _print_plan(campaign, load_plan(store))
        if not typer.confirm(
            f"Approve campaign {campaign} with {c.budget.approved_gpu_hours:g} GPU-h?"
        ):
            raise RefusedError("not approved (answered no)")
    c = approve_campaign(ws, campaign)
    console.print(
        f"approved {campaign} ({c.budget.approved_gpu_hours:g} GPU-h); next: rea launch {campaign}"
    )


@handle_errors
def launch(
    ctx: typer.Context,
    campaign: CampaignArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be submitted; submit nothing.")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Then watch progress (Ctrl-C leaves it running).")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Machine-readable output (with --dry-run: the request)."),
    ] = False,
) -> None:
    """Submit phase 1 and its wake-up job, then return: the campaign runs by itself."""
    from rea_cli.app.lifecycle import dry_run as make_dry_run
    from rea_cli.app.lifecycle import launch_campaign

    ws = workspace(ctx)
    if dry_run:
        d = make_dry_run(ws, campaign)
        if as_json:
            print_json(_dry_run_data(campaign, d))
        else:
            _print_dry_run(d)
        return
    c = launch_campaign(ws, campaign)
    if as_json:
        print_json({"campaign_id": campaign, "state": c.state.value, "launched": True})
        return
    from rea_cli.app.status import watchdog_hint

    console.print(f"launched {campaign}: phase validation submitted; rea is not running now.")
    hint = watchdog_hint(ws)
    if hint:
        console.print(hint, highlight=False, markup=False)
    if follow:
        _watch(ctx, campaign)
    else:
        console.print(f"follow with: rea watch {campaign}")


def _dry_run_data(campaign: str, d: Any) -> dict[str, Any]:
    """The submission as data: the request (array and wake-up), the scripts, the cost."""
    from dataclasses import asdict

    return {
        "campaign_id": campaign,
        "submitted": False,
        "request": asdict(d.request),
        "rendered": [{"title": title, "text": text} for title, text in d.rendered],
        "reserved_gpu_hours": d.reserved_gpu_hours,
        "estimated_gpu_hours": d.estimated_gpu_hours,
    }


def _print_dry_run(d: Any) -> None:
    array = d.request.array
    console.print(
        f"[bold]dry run[/]: job name {escape(array.job_name)}, {len(array.tasks)} task(s), "
        f"at most {array.parallelism} at once"
    )
    for title, text in d.rendered:
        console.print(f"[bold]{escape(title)}[/]:")
        console.print(text, highlight=False, markup=False, soft_wrap=True)
    console.print(
        f"cost: reserved {d.reserved_gpu_hours:.3f} GPU-h worst case, "
        f"estimated {d.estimated_gpu_hours:.3f} GPU-h; nothing was submitted"
    )


@handle_errors
def resume(ctx: typer.Context, campaign: CampaignArg) -> None:
    """Advance a campaign one step (what the wake-up job runs). Safe to run any time."""
    from rea_cli.app.resume import resume_campaign

    outcome = resume_campaign(workspace(ctx), campaign)
    console.print(f"{campaign}: {outcome.action}: {outcome.detail}", highlight=False, markup=False)


@handle_errors
def status(
    ctx: typer.Context,
    campaign: Annotated[
        str | None, typer.Argument(help="Campaign id; all campaigns if omitted.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Campaign state, trials per phase, failures with reasons, GPU-hours spent/reserved."""
    from rea_cli.app.status import list_summaries

    ws = workspace(ctx)
    if campaign is None:
        rows = list_summaries(ws)
        if as_json:
            print_json([r.dump() for r in rows])
            return
        from rea_cli.cli.tables import print_rows
        from rea_cli.numfmt import hours

        listed = [
            {
                "id": r.campaign_id,
                "state": r.state,
                "phase": r.phase or "-",
                "model/data": f"{r.model}/{r.dataset}",
                "GPU-h used": f"{hours(r.budget.spent_gpu_hours)}/{r.budget.approved_gpu_hours:g}",
            }
            for r in rows
        ]
        columns = ["id", "state", "phase", "model/data", "GPU-h used"]
        print_rows(console, listed, columns, title=f"Campaigns in {ws.root}")
        return
    from rea_cli.app.status import live_summary, watchdog_hint

    s = live_summary(ws, campaign)
    if as_json:
        print_json(s.dump())
        return
    _print_summary(s)
    hint = watchdog_hint(ws) if s.state == "RUNNING" else None
    if hint:
        console.print(hint, highlight=False, markup=False)


def _print_summary(s: Any) -> None:
    from rea_cli.numfmt import hours, proposal_line

    b = s.budget
    console.print(
        f"[bold]{escape(s.campaign_id)}[/]: {s.state}" + (f" (phase {s.phase})" if s.phase else "")
    )
    console.print(
        f"GPU-h: spent {hours(b.spent_gpu_hours)}, reserved {hours(b.reserved_gpu_hours)}, "
        f"approved {b.approved_gpu_hours:g}",
        highlight=False,
    )
    table = Table()
    for col in ("phase", "pending", "running", "succeeded", "failed", "cancelled"):
        table.add_column(col)
    ordered = s.phases_in_run_order()
    for name, p in ordered:
        table.add_row(
            name,
            *(
                str(getattr(p, k))
                for k in ("pending", "running", "succeeded", "failed", "cancelled")
            ),
        )
    console.print(table)
    for name, p in ordered:
        waiting = ", ".join(f"{n} {r}" for r, n in p.pending_reasons.items())
        if waiting:
            console.print(f"  {name} pending: {waiting}", highlight=False, markup=False)
        for reason in p.reasons:
            console.print(f"  failed: {reason}", highlight=False, markup=False)
    if s.pause_reason:
        console.print(f"paused: {s.pause_reason}", highlight=False, markup=False)
    if s.proposal:
        console.print(f"proposal: {proposal_line(s.proposal)}", highlight=False, markup=False)


@handle_errors
def watch(
    ctx: typer.Context,
    campaign: CampaignArg,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
) -> None:
    """Live progress until the campaign stops running. Ctrl-C stops watching, not the campaign."""
    if not 0.1 <= interval <= 3600:  # nan fails this too
        raise UsageError(f"--interval {interval}: give seconds from 0.1 to 3600")
    _watch(ctx, campaign, interval)


def _watch(ctx: typer.Context, campaign: str, interval: float = 1.0) -> None:
    from rea_cli.cli.watching import watch as follow

    ws = workspace(ctx)
    try:
        final = follow(ws, campaign, interval)
    except KeyboardInterrupt:
        console.print(
            f"stopped watching; {escape(campaign)} goes on "
            f"(rea watch {escape(campaign)} to follow again)"
        )
        return
    console.print(f"{escape(campaign)} is {final.state}")
    if final.proposal:
        console.print(f"proposal: {final.proposal}", highlight=False, markup=False)
    if final.pause_reason:
        console.print(f"paused: {final.pause_reason}", highlight=False, markup=False)


@handle_errors
def cancel(ctx: typer.Context, campaign: CampaignArg) -> None:
    """Cancel every job of the campaign (trials and wake-ups); the campaign becomes CANCELLED."""
    from rea_cli.app.lifecycle import cancel_campaign

    _, n = cancel_campaign(workspace(ctx), campaign)
    console.print(f"cancelled {campaign} ({n} job(s) cancelled)")


@handle_errors
def review(
    ctx: typer.Context,
    campaign: CampaignArg,
    accept: Annotated[bool, typer.Option("--accept", help="Accept the proposal.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject the proposal.")] = False,
    note: Annotated[
        str, typer.Option(help="Why (kept in the journal and the insights DB; 2,000 characters).")
    ] = "",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Accept a change that is not significant or has a negative test-split gain.",
        ),
    ] = False,
) -> None:
    """Accept or reject the campaign's proposal (human checkpoint 2)."""
    from rea_cli.app.lifecycle import ACCEPTED_CONFIG, review_campaign

    if accept == reject:
        raise UsageError("give exactly one of --accept or --reject")
    ws = workspace(ctx)
    c = review_campaign(ws, campaign, accept=accept, note=note, force=force)
    console.print(f"{campaign}: {c.state.value}")
    if accept:
        path = ws.campaign_dir(campaign) / ACCEPTED_CONFIG
        console.print(f"accepted model config written to {path}", markup=False)


@handle_errors
def report(
    ctx: typer.Context,
    campaign: CampaignArg,
    as_json: JsonOpt = False,
) -> None:
    """Write report.md and report.html (with plots) in the campaign folder; print the text."""
    from rea_cli.app.report import write_report

    path, text, data = write_report(workspace(ctx), campaign)
    if as_json:
        print_json(data)
        return
    console.print(Markdown(text))
    # each path on a line of its own, never wrapped: it is copied, whatever the width
    say = console.print
    say("\nreport written (with every trial), and with plots:")
    say(Text(f"  {path}"), soft_wrap=True)
    say(Text(f"  {data['html']}"), soft_wrap=True)
