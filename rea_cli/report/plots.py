"""The report's plots, drawn with matplotlib (Agg backend) as self-contained SVG text.

matplotlib is imported inside each function: `rea --help` and `rea status` never load it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from rea_cli.report.data import BudgetPoint, Curve, PhaseCost

WIDTH_IN = 7.5
COLORS = {
    "good": "#1a7f37",  # interval above zero
    "bad": "#cf222e",  # interval below zero
    "neutral": "#57606a",  # interval across zero, or no interval
    "baseline": "#0969da",
    "candidate": "#bf8700",
    "spent": "#cf222e",
    "reserved": "#bf8700",
    "approved": "#1f2328",
    "estimate": "#8c959f",
    "worst": "#d0d7de",
    "actual": "#0969da",
}


@dataclass(frozen=True)
class ForestRow:
    label: str
    mean: float | None
    low: float | None
    high: float | None
    note: str = ""  # printed right of the row (e.g. "winner", "n=3")


def _figure(height_in: float) -> Figure:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=96, layout="constrained")
    return fig


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})  # no timestamp: stable output
    return buf.getvalue()


def _row_color(r: ForestRow) -> str:
    if r.low is not None and r.low > 0:
        return COLORS["good"]
    if r.high is not None and r.high < 0:
        return COLORS["bad"]
    return COLORS["neutral"]


def forest(rows: Sequence[ForestRow], xlabel: str, title: str = "") -> str:
    """Gains with 95% CI bars against zero, one row per hypothesis (first row on top)."""
    shown = [r for r in rows if r.mean is not None]
    means = [r.mean for r in shown if r.mean is not None]
    fig = _figure(max(1.6, 0.38 * len(shown) + 1.0))
    ax = fig.add_subplot()
    ax.axvline(0.0, color="#1f2328", linewidth=1)
    for i, r in enumerate(shown):
        y = len(shown) - 1 - i
        color = _row_color(r)
        if r.low is not None and r.high is not None:
            ax.plot([r.low, r.high], [float(y)] * 2, color=color, linewidth=2.5)
        ax.plot([means[i]], [float(y)], marker="o", color=color, markersize=6)
    ax.set_yticks(range(len(shown)), [r.label for r in reversed(shown)], fontsize=8)
    if shown:
        ax.set_ylim(-0.7, len(shown) - 0.3)
        notes = ax.secondary_yaxis("right")
        notes.set_yticks(range(len(shown)), [r.note for r in reversed(shown)], fontsize=8)
        notes.tick_params(length=0)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="#eaeef2")
    if title:
        ax.set_title(title, fontsize=10)
    return _svg(fig)


def learning_curves(curves: Sequence[Curve], metric: str, candidate: str | None) -> str:
    """Valid metric per epoch: one thin line per seed, the mean over seeds bold."""
    fig = _figure(3.2)
    ax = fig.add_subplot()
    for hid, color in (("baseline", COLORS["baseline"]), (candidate, COLORS["candidate"])):
        mine = [c for c in curves if c.hypothesis_id == hid]
        if not mine or hid is None:
            continue
        for c in mine:
            ax.plot(c.epochs, _floats(c.values), color=color, alpha=0.35, linewidth=1)
        epochs = sorted({e for c in mine for e in c.epochs})
        means = []
        for e in epochs:
            vals = [v for c in mine for ep, v in zip(c.epochs, c.values, strict=True) if ep == e]
            finite = [v for v in vals if v is not None]
            means.append(sum(finite) / len(finite) if finite else float("nan"))
        label = f"{hid} (mean of {len(mine)} seed{'s' if len(mine) != 1 else ''})"
        ax.plot(epochs, means, color=color, linewidth=2.5, marker="o", label=label)
    ax.set_xlabel("epoch", fontsize=9)
    ax.set_ylabel(f"valid {metric}", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(color="#eaeef2")
    ax.legend(fontsize=8, loc="best")
    return _svg(fig)


def _floats(values: Sequence[float | None]) -> list[float]:
    return [float("nan") if v is None else v for v in values]


def budget_burn(points: Sequence[BudgetPoint], approved: float) -> str:
    """Spent and reserved GPU-hours over the campaign's time, under the approved line."""
    fig = _figure(3.0)
    ax = fig.add_subplot()
    if points:
        t0 = points[0].at
        minutes = [(p.at - t0).total_seconds() / 60.0 for p in points]
        ax.plot(minutes, [p.spent for p in points], color=COLORS["spent"], label="spent")
        ax.step(
            minutes,
            [p.spent + p.reserved for p in points],
            where="post",
            color=COLORS["reserved"],
            label="spent + reserved (worst case)",
        )
        ax.fill_between(
            minutes, [p.spent for p in points], color=COLORS["spent"], alpha=0.15, linewidth=0
        )
        top = max(p.spent + p.reserved for p in points)
        if approved <= 3 * max(top, 1e-9):
            ax.axhline(approved, color=COLORS["approved"], linestyle="--", label="approved")
        else:
            ax.set_title(f"approved: {approved:g} GPU-h (off the scale)", fontsize=9)
    ax.set_xlabel("minutes since the first submission", fontsize=9)
    ax.set_ylabel("GPU-hours", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(color="#eaeef2")
    ax.legend(fontsize=8, loc="upper left")
    return _svg(fig)


def phase_costs(costs: Sequence[PhaseCost]) -> str:
    """Per phase: the plan's estimate and worst case, and what its jobs measured."""
    fig = _figure(2.8)
    ax = fig.add_subplot()
    names = [c.phase for c in costs]
    x = range(len(costs))
    width = 0.27
    bars: list[tuple[str, str, Any]] = [
        ("estimate", COLORS["estimate"], [c.estimated for c in costs]),
        ("worst case", COLORS["worst"], [c.worst_case for c in costs]),
        ("actual", COLORS["actual"], [c.actual for c in costs]),
    ]
    for i, (label, color, values) in enumerate(bars):
        ax.bar([v + (i - 1) * width for v in x], values, width, label=label, color=color)
    ax.set_xticks(list(x), names, fontsize=9)
    ax.set_ylabel("GPU-hours (log scale)", fontsize=9)
    if any(v > 0 for _, _, values in bars for v in values):
        ax.set_yscale("log")  # a phase's estimate can be 1000x another's
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8)
    return _svg(fig)


def failure_counts(counts: Sequence[tuple[str, int]]) -> str:
    """Failed jobs per diagnosis (horizontal bars)."""
    fig = _figure(max(1.4, 0.35 * len(counts) + 0.9))
    ax = fig.add_subplot()
    labels = [c[0] for c in counts][::-1]
    ax.barh(labels, [c[1] for c in counts][::-1], color=COLORS["bad"])
    ax.set_xlabel("failed jobs", fontsize=9)
    ax.tick_params(labelsize=8)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _svg(fig)
