"""Numbers for people: gains and their intervals with enough digits to be read.

A gain of 0.00004 printed as "+0.0000" next to "significant" reads as a contradiction; every
figure of an interval is printed with enough decimals that a non-zero bound never shows as
zero and the two bounds stay apart. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rea_cli.campaign.model import Proposal

MIN_DECIMALS = 4
MAX_DECIMALS = 12


def decimals_for(values: Iterable[float | None], significant: int = 2) -> int:
    """Decimals so that every non-zero value shows `significant` significant digits."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not finite:
        return MIN_DECIMALS
    smallest = min(finite)
    needed = significant - 1 - math.floor(math.log10(smallest))
    return max(MIN_DECIMALS, min(MAX_DECIMALS, needed))


def signed(value: float | None, decimals: int | None = None) -> str:
    """'+0.0123'; 'n/a' for None."""
    if value is None or not math.isfinite(value):
        return "n/a"
    d = decimals_for([value]) if decimals is None else decimals
    return f"{value:+.{d}f}"


def gain_with_ci(gain: float | None, low: float | None, high: float | None) -> str:
    """'+0.00123 (95% CI +0.00004 .. +0.00242)', digits chosen over the three figures."""
    d = decimals_for([gain, low, high])
    if low is None or high is None:
        return f"{signed(gain, d)} (no interval: fewer than 2 pairs)"
    return f"{signed(gain, d)} (95% CI {signed(low, d)} .. {signed(high, d)})"


def relative(value: float | None) -> str:
    """A relative gain as a percentage with enough digits: '+0.012%'."""
    if value is None or not math.isfinite(value):
        return "n/a"
    d = max(1, decimals_for([value * 100], significant=2) - 2)
    return f"{value * 100:+.{d}f}%"


def hours(value: float) -> str:
    """GPU-hours: three decimals, or more for tiny amounts (so that 0.0004 is not 0.000)."""
    if value == 0 or abs(value) >= 0.01:
        return f"{value:.3f}"
    return f"{value:.{decimals_for([value], significant=2)}f}"


def proposal_line(p: Proposal) -> str:
    """The proposal in one line, its figures with enough digits ("significant" is never
    printed next to an interval that reads as zero)."""
    name = p.hypothesis_id if not p.keeps_baseline else (p.candidate or "baseline")
    if p.keeps_baseline and p.candidate in (None, "baseline"):
        return p.summary or "keep the baseline"
    verdict = "significant" if p.significant and not p.keeps_baseline else "not significant"
    head = (
        f"adopt {name}"
        if p.significant and not p.keeps_baseline
        else f"keep the baseline (best candidate {name})"
    )
    figures = (
        f"{p.metric} gain {gain_with_ci(p.gain, p.ci_low, p.ci_high)} on valid, "
        f"{gain_with_ci(p.test_gain, p.test_ci_low, p.test_ci_high)} on test, {p.n} paired seeds"
    )
    return f"{head}: {figures}, {verdict}"
