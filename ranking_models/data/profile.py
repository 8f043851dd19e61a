"""A profile of a data set's train split, as the planner needs it to decide which
hypotheses apply (skewed or non-monotone numerics -> transforms or buckets, rare values ->
min_frequency, strong pairs -> crosses). Imports no torch.

Numerical statistics use up to PROFILE_ROWS train rows (a random sample: the train split is
in random order); categorical counts use the whole train split. The profile is cached as JSON
next to the processed data (``<name>-<key>.profile.json``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ranking_models.data.arrays import BaseData
from ranking_models.data.interactions import score_pairs
from ranking_models.data.processing import load_base, processed_dir
from ranking_models.data.registry import validate_data_spec
from ranking_models.data.stats import skewness

log = logging.getLogger(__name__)

PROFILE_VERSION = 1
PROFILE_ROWS = 500_000
RARE_COUNT = 10  # a value seen fewer times in train is rare
CURVE_BINS = 10
TOP_PAIRS = 5
# Thresholds of the summary counts.
SKEWED = 2.0  # |skew|
# max(p99 - p50, p50 - p1) / (p75 - p25): normal 1.7, exponential 3.6, lognormal(0, 1) 6.4
HEAVY_TAILED = 4.0
NONMONOTONE = 0.3  # share of the between-bin variation a monotone fit leaves
NONMONOTONE_P = 1e-3  # ... and that leftover must be this unlikely as noise


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoricalProfile(_Frozen):
    name: str
    cardinality: int  # distinct train values (below the spec's min_frequency: one, OOV)
    rare_mass: float  # share of train rows whose value is seen < 10 times in train
    top_share: float  # share of train rows with the most frequent value


class NumericalProfile(_Frozen):
    name: str
    missing_rate: float
    skew: float
    heavy_tail: float  # max(p99 - p50, p50 - p1) / (p75 - p25), robust to the scale
    n_unique: int
    nonneg_share: float  # share of the non-missing values >= 0
    # Label rate over train quantile bins of the value: its spread (weighted std of the bin
    # rates / the overall rate), and the share of the between-bin variation that the best
    # monotone (isotonic) fit does not explain; nonmonotone_clear: that share is large and
    # cannot be sampling noise.
    signal: float
    nonmonotone: float
    nonmonotone_clear: bool


class PairProfile(_Frozen):
    a: str
    b: str
    score: float  # held-out NE gain of crossing a and b (ranking_models.data.interactions)


class DataProfile(_Frozen):
    """The profile; the summary fields are there for simple planner rules."""

    version: int = PROFILE_VERSION
    name: str
    key: str
    n_rows: int
    n_train: int
    label_rate: float
    categorical: list[CategoricalProfile]
    numerical: list[NumericalProfile]
    pairs: list[PairProfile]  # the best TOP_PAIRS categorical pairs, best first
    n_categorical: int
    n_numerical: int
    max_abs_skew: float
    n_skewed: int  # |skew| > 2
    n_heavy_tailed: int  # heavy_tail > 4
    n_nonmonotone: int  # nonmonotone_clear
    max_cardinality: int
    max_rare_mass: float
    imbalance: float  # min(label_rate, 1 - label_rate)
    best_pair_score: float


def profile_data(spec: dict[str, Any], use_cache: bool = True) -> DataProfile:
    """The profile of a data spec (from the cache when possible)."""
    spec = validate_data_spec(spec)
    base = load_base(spec, use_cache)
    path = processed_dir() / f"{base.name}-{base.key}.profile.json"
    if use_cache and base.cached:
        try:
            profile = DataProfile.model_validate_json(path.read_bytes())
            if profile.version == PROFILE_VERSION and profile.key == base.key:
                return profile
        except FileNotFoundError:
            pass
        except (OSError, ValidationError, ValueError) as exc:
            log.warning("rebuilding the unreadable data profile %s: %s", path, exc)
    profile = profile_base(base)
    if use_cache and base.cached:
        _write_text(path, profile.model_dump_json(indent=1))
    return profile


def profile_base(base: BaseData) -> DataProfile:
    """The profile of processed base arrays (pure)."""
    train = base.train
    y = np.asarray(train.y, dtype=np.float64)
    rate = float(y.mean())
    cats = [_categorical(name, train.x_cat[:, j]) for j, name in enumerate(base.cat_names)]
    rows = min(len(y), PROFILE_ROWS)
    nums = [
        _numerical(name, np.asarray(train.raw_num[:rows, j]), y[:rows])
        for j, name in enumerate(base.num_names)
    ]
    fields = {name: train.x_cat[:, j] for j, name in enumerate(base.cat_names)}
    pairs = [PairProfile(a=s.a, b=s.b, score=_round(s.score)) for s in score_pairs(fields, y)]
    skews = [abs(n.skew) for n in nums]
    return DataProfile(
        name=base.name,
        key=base.key,
        n_rows=base.n_rows,
        n_train=len(y),
        label_rate=_round(rate),
        categorical=cats,
        numerical=nums,
        pairs=pairs[:TOP_PAIRS],
        n_categorical=len(cats),
        n_numerical=len(nums),
        max_abs_skew=max(skews, default=0.0),
        n_skewed=sum(s > SKEWED for s in skews),
        n_heavy_tailed=sum(n.heavy_tail > HEAVY_TAILED for n in nums),
        n_nonmonotone=sum(n.nonmonotone_clear for n in nums),
        max_cardinality=max((c.cardinality for c in cats), default=0),
        max_rare_mass=max((c.rare_mass for c in cats), default=0.0),
        imbalance=_round(min(rate, 1.0 - rate)),
        best_pair_score=pairs[0].score if pairs else 0.0,
    )


def _categorical(name: str, codes: np.ndarray) -> CategoricalProfile:
    counts = np.bincount(codes)
    seen = counts[counts > 0]
    n = max(int(counts.sum()), 1)
    return CategoricalProfile(
        name=name,
        cardinality=len(seen),
        rare_mass=_round(seen[seen < RARE_COUNT].sum() / n),
        top_share=_round(seen.max() / n) if len(seen) else 0.0,
    )


def _numerical(name: str, values: np.ndarray, y: np.ndarray) -> NumericalProfile:
    finite = np.isfinite(values)
    x, yx = values[finite], y[finite]
    signal, nonmonotone, clear = label_curve(x, yx)
    return NumericalProfile(
        name=name,
        missing_rate=_round((~finite).mean()) if len(values) else 0.0,
        skew=_round(skewness(x)),
        heavy_tail=_round(heavy_tail(x)),
        n_unique=len(np.unique(x)),
        nonneg_share=_round((x >= 0).mean()) if len(x) else 0.0,
        signal=_round(signal),
        nonmonotone=_round(nonmonotone),
        nonmonotone_clear=clear,
    )


def _round(value: Any) -> float:
    return round(float(value), 6)


def heavy_tail(x: np.ndarray) -> float:
    """The longer tail over the middle: max(p99 - p50, p50 - p1) / (p75 - p25), with the
    p90 - p10 range when the IQR is 0; 0 if both are."""
    if len(x) == 0:
        return 0.0
    p1, p10, p25, p50, p75, p90, p99 = np.quantile(x, [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
    spread = p75 - p25 if p75 > p25 else p90 - p10
    return float(max(p99 - p50, p50 - p1) / spread) if spread > 0 else 0.0


def label_curve(x: np.ndarray, y: np.ndarray, bins: int = CURVE_BINS) -> tuple[float, float, bool]:
    """(signal, nonmonotone, clear) of the label rate over quantile bins of x."""
    from scipy.optimize import isotonic_regression
    from scipy.special import chdtrc

    if len(x) < 2 * bins:
        return 0.0, 0.0, False
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    idx = np.searchsorted(edges, x, side="right")
    n = np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)
    keep = n > 0
    n, pos = n[keep], np.bincount(idx, y, minlength=len(edges) + 1)[keep]
    rate, overall = pos / n, float(y.mean())
    if len(n) < 3 or overall <= 0.0 or overall >= 1.0:
        return 0.0, 0.0, False
    between = float(np.sum(n * (rate - overall) ** 2))
    signal = float(np.sqrt(between / n.sum()) / overall)
    if between <= 0.0:
        return signal, 0.0, False
    left = min(
        float(np.sum(n * (rate - isotonic_regression(rate, weights=n, increasing=up).x) ** 2))
        for up in (True, False)
    )
    # Under a monotone truth the leftover is at most chi-square with (bins - 1) dof.
    p_value = float(chdtrc(len(n) - 1, left / (overall * (1.0 - overall))))
    nonmonotone = left / between
    return signal, nonmonotone, bool(nonmonotone > NONMONOTONE and p_value < NONMONOTONE_P)


def _write_text(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache only costs speed
        log.warning("could not write the data profile %s: %s", path, exc)
