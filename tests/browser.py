"""Headless Chromium for report tests: a screenshot of a page, its console, its plot frames.

Chromium is Debian's `chromium` package (scripts/install-chromium.sh; .ci/run installs it).
Outside CI a machine without it skips these tests with the reason; in CI (CI set) it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

FRAME_RGB = (0x82, 0x50, 0xDF)  # figure.plot .frame border in report.html.j2
FRAME_PX = 3


def chromium() -> str:
    """The browser's path; skips the test (fails it in CI) when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    reason = "headless Chromium is not installed (run scripts/install-chromium.sh as root)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install it (.ci/run)")
    pytest.skip(reason)


@dataclass(frozen=True)
class Shot:
    png: Path
    console: list[str]  # console messages of the page (any level)


def screenshot(page: Path, out: Path, width: int = 1100, height: int = 8000) -> Shot:
    """Render `page` (a local file) and capture the screen and the page's console."""
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # as root (CI) Chromium refuses to start without it
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--enable-logging=stderr",
            "--v=0",
            f"--window-size={width},{height}",
            f"--screenshot={out}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.exists(), f"no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return Shot(out, console)


@dataclass(frozen=True)
class Region:
    top: int
    left: int
    height: int
    width: int
    ink: float  # fraction of pixels that are not (nearly) white
    colors: int  # distinct colours


def plot_regions(png: Path) -> list[Region]:
    """The inside of every plot frame in the screenshot, with how much it holds."""
    import numpy as np
    from PIL import Image
    from scipy import ndimage

    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    mask = np.abs(pixels - np.array(FRAME_RGB)).sum(axis=2) <= 6
    labels, _ = ndimage.label(mask)
    regions = []
    for rows, cols in ndimage.find_objects(labels):
        h, w = rows.stop - rows.start, cols.stop - cols.start
        if h < 40 or w < 40:
            continue  # not a frame (a stray pixel of that colour)
        inner = pixels[
            rows.start + FRAME_PX : rows.stop - FRAME_PX,
            cols.start + FRAME_PX : cols.stop - FRAME_PX,
        ]
        ink = float((inner.sum(axis=2) < 3 * 245).mean())
        colors = len(np.unique(inner.reshape(-1, 3), axis=0))
        regions.append(Region(rows.start, cols.start, h, w, ink, colors))
    return sorted(regions, key=lambda r: r.top)


def last_content_row(png: Path) -> int:
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    rows = np.where((pixels.sum(axis=2) < 3 * 250).any(axis=1))[0]
    return int(rows.max()) if len(rows) else 0
