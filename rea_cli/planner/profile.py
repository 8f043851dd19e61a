"""The baseline's profile: facts about its data (from ranking_models' data profile) and its
training curve, as a flat mapping the knowledge base's rules read. Pure functions.

Training facts come from the baseline's own trials (the validation probe, or identical trials
reused from history); before they exist, rules on `training.*` wait.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from rea_cli.campaign.model import CurvePoint
from rea_cli.planner.stats import signed

# a last epoch that still improves the monitored metric by this fraction "still improves"
IMPROVING_REL = 0.0005
# valid loss this much above the training loss (relatively) at the best epoch: overfitting
OVERFIT_GAP = 0.05


class TrainingProfile(BaseModel):
    """What the baseline's learning curves say (means over its seeds)."""

    epochs: int
    improving_at_end: bool
    last_gain_rel: float
    best_epoch_frac: float
    overfit_gap: float | None
    unstable: bool
    n_seeds: int

    def facts(self) -> dict[str, Any]:
        """The knowledge base's training facts (rules.TRAINING_FACTS), unprefixed."""
        keep = ("improving_at_end", "last_gain_rel", "best_epoch_frac", "overfit_gap")
        out = {k: getattr(self, k) for k in (*keep, "unstable", "epochs")}
        return {k: v for k, v in out.items() if v is not None}


def training_profile(
    curves: Sequence[Sequence[CurvePoint]], direction: str, *, diverged: int = 0
) -> TrainingProfile | None:
    """The profile of the baseline's curves (one per seed); None without any complete curve."""
    usable = [c for c in curves if c and all(p.value is not None for p in c)]
    if not usable:
        return None
    epochs = max(len(c) for c in usable)
    last_gains, best_fracs, gaps, spikes = [], [], [], False
    for curve in usable:
        values = [signed(float(p.value or 0.0), direction) for p in curve]
        best = max(range(len(values)), key=lambda i: (values[i], -i))
        best_fracs.append((best + 1) / len(values))
        if len(values) >= 2:
            scale = abs(float(curve[-2].value or 0.0)) or 1.0
            last_gains.append((values[-1] - values[-2]) / scale)
        point = curve[best]
        if point.train_loss is not None and point.valid_loss:
            gaps.append((point.valid_loss - point.train_loss) / point.valid_loss)
        losses = [p.train_loss for p in curve if p.train_loss is not None]
        spikes = spikes or any(b > a * 1.1 for a, b in itertools.pairwise(losses))
    last_gain = _mean(last_gains) if last_gains else 0.0
    return TrainingProfile(
        epochs=epochs,
        improving_at_end=last_gain > IMPROVING_REL,
        last_gain_rel=last_gain,
        best_epoch_frac=_mean(best_fracs),
        overfit_gap=_mean(gaps) if gaps else None,
        unstable=spikes or diverged > 0,
        n_seeds=len(usable),
    )


def traits(profile: Mapping[str, Any]) -> str:
    """A short, stable signature of the data for pooling history across campaigns: the
    traits the knowledge base's rules care about most, not the data set's name."""
    marks = []
    if profile.get("n_numerical", 0):
        marks.append("numeric")
    if profile.get("n_skewed", 0) or profile.get("n_heavy_tailed", 0):
        marks.append("skewed")
    if profile.get("n_nonmonotone", 0):
        marks.append("nonmonotone")
    if profile.get("max_cardinality", 0) >= 10_000:
        marks.append("highcard")
    if profile.get("imbalance", 0.5) < 0.05:
        marks.append("imbalanced")
    rows = int(profile.get("n_rows", 0))
    marks.append("small" if rows < 200_000 else "large")
    return ",".join(marks)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
