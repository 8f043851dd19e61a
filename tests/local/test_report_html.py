"""report.html of a real finished campaign: its structure, and what a browser shows of it.

The campaign is real (local backend, real training); a planted strategy with absurd learning
rates ranks first and diverges, so the report has failures to show as well. The page is
rendered by headless Chromium and the screenshot's plot regions must hold a drawing.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.browser import last_content_row, plot_regions, screenshot
from tests.conftest import campaign_doc, make_workspace, run_rea, start_campaign, wait_for

pytestmark = pytest.mark.slow

ABSURD = """
[[strategy]]
id = "lr_absurd"
category = "optimization"
name = "Absurd learning rates (fails on purpose)"
rationale = "Planted by the test: the trainer must report divergence."
reference = "rea's report test"
families = ["dcn_v2"]
prior = { mean = 0.5, sd = 0.01 }
labels = ["huge"]

[strategy.delta]
"train.lr_dense" = { levels = [1e6] }
"train.lr_sparse" = { levels = [1e6] }
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished campaign's folder, with report.md and report.html written by `rea report`."""
    ws = make_workspace(tmp_path_factory.mktemp("report") / "ws")
    (ws / "knowledge").mkdir()
    (ws / "knowledge" / "absurd.toml").write_text(ABSURD)
    start_campaign(ws, "rep")
    wait_for(lambda: campaign_doc(ws, "rep")["state"] != "RUNNING", 400, "the campaign to end")
    assert campaign_doc(ws, "rep")["state"] == "AWAITING_REVIEW"
    done = run_rea(ws, "report", "rep")
    assert done.returncode == 0, done.stderr
    html = ws / "campaigns" / "rep" / "report.html"
    assert "with plots:" in done.stdout
    assert str(html) in done.stdout.splitlines()[-1]  # the path whole, on a line of its own
    return ws / "campaigns" / "rep"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_report_html_structure(finished: Path) -> None:
    doc = campaign_doc(finished.parents[1], "rep")
    page = _parse(finished / "report.html")
    text = " ".join(" ".join(page.text).split())
    ids = {a.get("id") for _, a in page.tags}
    # sections: proposal on top, each phase that ran, curves, budget, failures, hypotheses
    assert {"proposal", "curves", "budget", "failures", "hypotheses"} <= ids
    assert "phase-validation" in ids and "phase-exploitation" in ids
    first_h2 = next(a.get("id") for t, a in page.tags if t == "h2")
    assert first_h2 == "proposal"
    # self-contained: no script, nothing fetched; every image is an embedded, valid SVG
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe")]
    images = [a for t, a in page.tags if t == "img"]
    assert images
    assert all((a.get("src") or "").startswith("data:image/svg+xml;base64,") for a in images)
    for a in images:
        svg = base64.b64decode((a["src"] or "").split(",", 1)[1])
        assert ET.fromstring(svg).tag.endswith("svg")
    assert not re.search(r"(src|href)=\"https?:", (finished / "report.html").read_text())
    plots = {a.get("id") for t, a in page.tags if t == "figure"}
    assert {"plot-validation", "plot-curves", "plot-burn", "plot-costs", "plot-failures"} <= plots
    # the proposal: verdict, gains on valid and test with their intervals, seeds
    proposal = doc["proposal"]
    assert ("Significant: adopt" in text) == (
        proposal["significant"] and proposal["hypothesis_id"] != "baseline"
    )
    assert "Keep the baseline" in text or "Significant: adopt" in text
    assert text.count("95% CI") >= 2
    # failures: the planted divergence, its diagnosis and what rea did
    assert "loss became NaN/Inf or exploded" in text
    failed = [t for t in doc["trials"].values() if t["status"] == "failed"]
    assert failed and all(t["hypothesis_id"] == "lr_absurd@huge" for t in failed)
    action = failed[0]["jobs"][-1]["action"]
    assert f"{action} ({len(failed)})" in text
    # hypotheses with their source, rationale and reference
    assert "research knowledge base" in text and "workspace knowledge base" in text
    assert "rea's report test" in text and "Planted by the test" in text
    # estimate vs actual per phase, for every phase of the plan
    for phase in ("validation", "combination", "exploitation"):
        assert re.search(rf"<td>{phase}</td>(<td class=\"num\">[^<]*</td>){{4}}", _flat(finished))
    # the markdown report is still written next to it
    assert (finished / "report.md").read_text().startswith("# Campaign rep")


def _flat(folder: Path) -> str:
    return re.sub(r">\s+<", "><", (folder / "report.html").read_text())


def test_report_plots_are_visible_in_headless_chromium(finished: Path, tmp_path: Path) -> None:
    html = finished / "report.html"
    shot = screenshot(html, tmp_path / "report.png")
    assert shot.console == [], f"console messages: {shot.console}"
    figures = [a for t, a in _parse(html).tags if t == "figure"]
    regions = plot_regions(shot.png)
    assert len(regions) == len(figures), (
        f"{len(regions)} plot frame(s) on screen for {len(figures)} in the page"
    )
    for r in regions:
        # a drawing: axes, labels and data in several colours, not an empty or broken image
        assert r.width > 500 and r.height > 100, r
        assert r.ink > 0.02 and r.colors > 50, r
    assert last_content_row(shot.png) < 8000 - 50, "the page is longer than the screenshot"
    shutil.copy(shot.png, finished / "report-screenshot.png")  # for a person to look at


def test_insights_report_draws_effects_across_campaigns(finished: Path, tmp_path: Path) -> None:
    ws = finished.parents[1]
    done = run_rea(ws, "insights", "report", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    html = Path(out["report"])
    assert html == ws / "insights-report.html" and out["effects"] > 0
    page = _parse(html)
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe")]
    assert "dcn_v2 on synthetic, auc" in " ".join(page.text)
    shot = screenshot(html, tmp_path / "insights.png", height=3000)
    assert shot.console == []
    regions = plot_regions(shot.png)
    assert len(regions) == len([t for t, _ in page.tags if t == "figure"]) >= 1
    assert all(r.ink > 0.02 and r.colors > 50 for r in regions), regions
