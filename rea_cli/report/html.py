"""The campaign report as one self-contained HTML file: plots embedded as SVG data URIs, no
script, nothing fetched from the network (it opens from a login node's shared folder)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from rea_cli import __version__, numfmt
from rea_cli.report import plots
from rea_cli.report.data import GainRow, ReportData

TEMPLATES = Path(__file__).parent / "templates"


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # ids, goals and messages are user text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return json.dumps(v) if not isinstance(v, str) else v


def _get(config: dict[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def proposal_view(d: ReportData) -> dict[str, Any] | None:
    c = d.campaign
    p = c.proposal
    if p is None:
        return None
    adopt = p.significant and not p.keeps_baseline
    candidate = c.hypotheses.get(p.candidate or "") if p.candidate else None
    delta = p.delta or (candidate.delta if candidate else {})
    baseline = d.plan.baseline if d.plan else {}
    if adopt:
        verdict = f"Significant: adopt {p.hypothesis_id} ({c.hypotheses[p.hypothesis_id].title})"
    else:
        verdict = "Keep the baseline: " + (
            "no candidate was confirmed"
            if p.candidate in (None, "baseline")
            else f"the best candidate, {p.candidate}, is not significant on fresh seeds"
        )
    warning = ""
    if adopt and p.test_gain is not None and p.test_gain < 0:
        warning = (
            "The test-split gain is negative: check before accepting "
            "(`rea review --accept` asks for --force)."
        )
    return {
        "adopt": adopt,
        "verdict": verdict,
        "summary": p.summary,
        "valid": numfmt.gain_with_ci(p.gain, p.ci_low, p.ci_high),
        "test": numfmt.gain_with_ci(p.test_gain, p.test_ci_low, p.test_ci_high),
        "n": p.n,
        "warning": warning,
        "changes": [
            (k, _value(_get(baseline, k)), _value(v))
            for k, v in sorted(delta.items())
            if not baseline or _get(baseline, k) != v  # a search point repeats unchanged keys
        ],
    }


def _row(r: GainRow) -> dict[str, Any]:
    g = r.gain
    return {
        "label": r.label,
        "text": numfmt.gain_with_ci(g.mean, g.ci_low, g.ci_high) if g.mean is not None else "n/a",
        "n": g.n,
        "p": "" if r.p_value is None else f"{r.p_value:.3g}",
        "p_adj": "" if r.p_adjusted is None else f"{r.p_adjusted:.3g}",
        "decision": r.decision + (f" ({g.failed} seed(s) failed)" if g.failed else ""),
    }


def _forest(rows: list[GainRow], metric: str) -> str | None:
    drawn = [
        plots.ForestRow(r.label, r.gain.mean, r.gain.ci_low, r.gain.ci_high, r.decision)
        for r in rows
        if r.gain.mean is not None
    ]
    if not drawn:
        return None
    return data_uri(plots.forest(drawn, f"paired gain in {metric} over the baseline"))


def render(d: ReportData) -> str:
    """The report's HTML text."""
    c = d.campaign
    b = c.budget
    plan = d.plan
    phases = [
        {
            "name": ph.name,
            "status": ph.status,
            "rounds": ph.rounds,
            "gate_detail": ph.gate_detail,
            "gate_passed": ph.gate_passed,
            "rows": [_row(r) for r in ph.rows],
            "plot": _forest(ph.rows, c.metric),
        }
        for ph in d.phases
    ]
    counts = [(f.diagnosis, f.count) for f in d.failures]
    template = _environment().get_template("report.html.j2")
    return str(
        template.render(
            title=f"Campaign {c.campaign_id}",
            c=c,
            proposal=proposal_view(d),
            review=c.review,
            phases=phases,
            curves_plot=data_uri(plots.learning_curves(d.curves, c.metric, d.curve_candidate))
            if d.curves
            else None,
            curve_candidate=d.curve_candidate,
            budget={
                "approved": f"{b.approved_gpu_hours:g}",
                "spent": numfmt.hours(b.spent_gpu_hours),
                "reserved": numfmt.hours(b.reserved_gpu_hours),
                "estimated": numfmt.hours(plan.estimated_gpu_hours) if plan else "n/a",
                "worst": numfmt.hours(plan.reserved_gpu_hours) if plan else "n/a",
            },
            burn_plot=data_uri(plots.budget_burn(d.burn, b.approved_gpu_hours)) if d.burn else None,
            costs_plot=data_uri(plots.phase_costs(d.costs)),
            costs=[
                {
                    "phase": p.phase,
                    "estimated": numfmt.hours(p.estimated),
                    "worst_case": numfmt.hours(p.worst_case),
                    "actual": numfmt.hours(p.actual),
                    "ratio": f"{p.actual / p.estimated:.2f}" if p.estimated else "",
                }
                for p in d.costs
            ],
            failures=d.failures,
            failures_plot=data_uri(plots.failure_counts(counts)) if counts else None,
            hypotheses=d.hypotheses,
            version=__version__,
        )
    )


def render_insights(rows: list[dict[str, Any]], source: str, limit: int = 30) -> str:
    """The cross-campaign view: per model, data set and metric, the effect of each hypothesis
    (rows of the hypothesis_effects view, best first), at most `limit` per plot."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        key = (str(r.get("model_family")), str(r.get("dataset")), str(r.get("metric")))
        groups.setdefault(key, []).append(r)
    shown = []
    for (family, dataset, metric), items in groups.items():
        items = sorted(items, key=lambda r: -(r.get("mean_gain") or float("-inf")))[:limit]
        drawn = [
            plots.ForestRow(
                str(r["hypothesis_id"]),
                r.get("mean_gain"),
                r.get("ci_low"),
                r.get("ci_high"),
                f"n={r.get('n')}",
            )
            for r in items
            if r.get("mean_gain") is not None
        ]
        if not drawn:
            continue
        shown.append(
            {
                "anchor": f"{family}-{dataset}-{metric}".replace(":", "-").replace("/", "-"),
                "model_family": family,
                "dataset": dataset,
                "metric": metric,
                "plot": data_uri(plots.forest(drawn, f"paired gain in {metric} over the baseline")),
                "rows": [
                    {
                        "hypothesis_id": r["hypothesis_id"],
                        "source": r.get("source") or "",
                        "text": numfmt.gain_with_ci(
                            r.get("mean_gain"), r.get("ci_low"), r.get("ci_high")
                        ),
                        "n": r.get("n"),
                        "n_campaigns": r.get("n_campaigns"),
                    }
                    for r in items
                ],
            }
        )
    template = _environment().get_template("insights.html.j2")
    return str(
        template.render(title="Hypothesis effects across campaigns", source=source, groups=shown)
    )
