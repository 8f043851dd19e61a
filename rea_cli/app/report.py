"""The campaign report: report.md (text) and report.html (the same with plots), written side
by side in the campaign folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rea_cli.app.status import summary
from rea_cli.campaign.model import PHASES, Campaign
from rea_cli.campaign.store import CampaignStore
from rea_cli.fsutil import write_text_atomic
from rea_cli.numfmt import gain_with_ci, proposal_line
from rea_cli.planner.plan import Plan
from rea_cli.workspace import Workspace


def render(c: Campaign, with_trials: bool = True) -> str:
    """report.md; without `with_trials`, the same less the per-trial tables (for a terminal, where
    their ids would not fit)."""
    lines = [
        f"# Campaign {c.campaign_id}",
        "",
        f"- goal: {c.goal}",
        f"- baseline: {c.model_family} on {c.dataset}; metric {c.metric} ({c.direction})",
        f"- state: {c.state.value}",
        f"- budget: spent {c.budget.spent_gpu_hours:.4f} / approved "
        f"{c.budget.approved_gpu_hours:g} GPU-h (reserved {c.budget.reserved_gpu_hours:.4f})",
        "",
    ]
    if c.proposal:
        p = c.proposal
        lines += ["## Proposal", "", proposal_line(p), ""]
        if p.delta:
            lines += ["Config change:", ""] + [f"- `{k} = {v}`" for k, v in p.delta.items()] + [""]
        if p.test_gain is not None:
            test = gain_with_ci(p.test_gain, p.test_ci_low, p.test_ci_high)
            lines += [f"Test-split gain: {test}", ""]
    if c.review:
        lines += [
            f"Review: **{c.review.decision}** by {c.review.by} at {c.review.at}. {c.review.note}",
            "",
        ]
    for phase in PHASES:
        rec = c.phases.get(phase)
        trials, show_trials = c.trials_of(phase), with_trials
        if rec is None and not trials:
            continue
        lines += [f"## {phase.capitalize()} ({rec.status if rec else 'pending'})", ""]
        if rec and rec.gate:
            lines += [f"Gate: {rec.gate.detail}", ""]
        if trials and show_trials:
            lines += [
                f"| trial | hypothesis | seed | status | {c.metric} | attempts | diagnosis |",
                "|---|---|---|---|---|---|---|",
            ]
            for tid, t in sorted(trials.items()):
                value = f"{t.metric_value:.4f}" if t.metric_value is not None else ""
                lines.append(
                    f"| {tid} | {t.hypothesis_id} | {t.seed} | {t.status} | {value} | "
                    f"{max(t.attempts, len(t.jobs))} | {t.diagnosis or ''} |"
                )
            lines.append("")
    hyps = [
        f"- **{hid}** ({h.source}): {h.title}. {h.rationale}" for hid, h in c.hypotheses.items()
    ]
    lines += ["## Hypotheses", "", *hyps, ""]
    return "\n".join(lines)


def write_report(ws: Workspace, campaign_id: str) -> tuple[Path, str, dict[str, Any]]:
    """Write report.md and report.html; return the markdown's path, the report's text for a
    terminal (without the per-trial tables), and the summary (with both paths) as data."""
    store = CampaignStore(ws, campaign_id)
    c = store.load()
    path = store.dir / "report.md"
    write_text_atomic(path, render(c))
    html_path = write_html(store, c)
    data = {"report": str(path), "html": str(html_path), **summary(c).dump()}
    return path, render(c, with_trials=False), data


def write_html(store: CampaignStore, c: Campaign) -> Path:
    """report.html: plots drawn by matplotlib, imported only here."""
    from rea_cli.report import data, html

    plan = Plan.model_validate_json(store.read_plan_bytes()) if store.plan_path.exists() else None
    path = store.dir / "report.html"
    write_text_atomic(path, html.render(data.build(c, plan)))
    return path
