"""`rea watch` and `launch --follow`: a live view at a terminal, one line per change elsewhere
(logs and CI see progress). Ctrl-C stops watching, never the campaign."""

from __future__ import annotations

import sys
import time

from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from rea_cli import numfmt
from rea_cli.app.progress import Progress, live_progress
from rea_cli.cli.common import console
from rea_cli.workspace import Workspace


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def best_text(p: Progress) -> str:
    if p.best is None:
        return "best gain so far: none yet"
    b = p.best
    return (
        f"best gain so far: {b.hypothesis_id} {numfmt.gain_with_ci(b.gain, b.ci_low, b.ci_high)}"
        f" on {b.n} seeds ({b.phase})"
    )


def budget_text(p: Progress) -> str:
    return (
        f"GPU-h spent {numfmt.hours(p.spent_gpu_hours)}, reserved "
        f"{numfmt.hours(p.reserved_gpu_hours)}, approved {p.approved_gpu_hours:g}"
    )


def phases_text(p: Progress) -> str:
    return "; ".join(
        f"{ph.phase} {ph.done} done {ph.running} running {ph.pending} pending {ph.failed} failed"
        for ph in p.phases
    )


def state_line(p: Progress) -> str:
    """What changes mean: state, phases, best gain, budget (not the clock)."""
    where = f" ({p.phase})" if p.phase else ""
    return (
        f"{p.campaign_id} {p.state}{where} | {phases_text(p)} | {best_text(p)} | {budget_text(p)}"
    )


def progress_line(p: Progress) -> str:
    eta = f", round ETA ~{duration(p.round_eta_s)}" if p.round_eta_s is not None else ""
    return f"{time.strftime('%H:%M:%S')} {state_line(p)} | elapsed {duration(p.elapsed_s)}{eta}"


def progress_view(p: Progress) -> RenderableType:
    """The live view; fits 80 columns (wrapped lines, a five-column table)."""
    where = f" - phase {p.phase}" if p.phase else ""
    table = Table(title=f"{escape(p.campaign_id)}: {p.state}{where}", title_justify="left")
    for col in ("phase", "done", "running", "pending", "failed"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for ph in p.phases:
        table.add_row(ph.phase, str(ph.done), str(ph.running), str(ph.pending), str(ph.failed))
    eta = f"; round ETA ~{duration(p.round_eta_s)}" if p.round_eta_s is not None else ""
    lines = [
        Text(best_text(p)),
        Text(budget_text(p)),
        Text(f"elapsed {duration(p.elapsed_s)}{eta}"),
    ]
    return Group(table, *lines)


def watch(ws: Workspace, campaign: str, interval: float = 1.0) -> Progress:
    """Until the campaign stops running; returns its last progress."""
    if sys.stdout.isatty():
        with Live(console=console, refresh_per_second=4) as live:
            while True:
                p = live_progress(ws, campaign)
                live.update(progress_view(p))
                if p.state != "RUNNING":
                    return p
                time.sleep(interval)
    last = None
    while True:
        p = live_progress(ws, campaign)
        if state_line(p) != last:  # one line per change: logs and CI see progress
            last = state_line(p)
            print(progress_line(p), flush=True)
        if p.state != "RUNNING":
            return p
        time.sleep(interval)
