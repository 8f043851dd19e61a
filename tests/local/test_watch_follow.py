"""`rea launch --follow` without a terminal: one line per change (logs and CI see progress),
phases in run order with done/running/failed, the best gain so far, the budget, the elapsed
time and the round's ETA; the live view of the same progress fits 80 columns."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from rea_cli.app.progress import live_progress
from rea_cli.cli.watching import progress_view
from rea_cli.workspace import Workspace
from tests.conftest import start_campaign

pytestmark = pytest.mark.slow


def test_launch_follow_prints_one_line_per_change(workspace: Path) -> None:
    start_campaign(workspace, "fol", launch=False)
    done = subprocess.run(
        [sys.executable, "-m", "rea_cli", "--workspace", str(workspace), "launch", "fol",
         "--follow"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stdout.splitlines() if re.match(r"\d\d:\d\d:\d\d fol ", ln)]
    assert len(lines) >= 4, done.stdout
    assert len(set(lines)) == len(lines)  # no repeated line: one per change
    for ln in lines:
        assert "GPU-h spent" in ln and "approved 4" in ln and "elapsed" in ln
    running = [ln for ln in lines if " RUNNING " in ln]
    assert any("round ETA ~" in ln for ln in running)
    assert any("best gain so far: " in ln and "none yet" not in ln for ln in lines)
    last = lines[-1]
    assert "AWAITING_REVIEW" in last
    # phases in run order, with per-phase counts
    order = re.findall(r"(validation|combination|exploitation) \d+ done \d+ running", last)
    assert order[0] == "validation" and order[-1] == "exploitation", last
    assert "\nfol is AWAITING_REVIEW\n" in done.stdout
    # spent only grows
    spent = [float(m) for m in re.findall(r"GPU-h spent ([0-9.]+)", done.stdout)]
    assert spent == sorted(spent) and spent[-1] > 0

    console = Console(width=80, record=True)
    console.print(progress_view(live_progress(Workspace(workspace), "fol")))
    view = console.export_text()
    assert max(len(line.rstrip()) for line in view.splitlines()) <= 80
    assert "validation" in view and "best gain so far" in view
