"""The trial config's ``features`` section applied to the base arrays (pure, numpy only).

Everything is fitted on the train split and applied to every split:

- ``min_frequency``: base codes seen fewer times in train map to OOV 0 (re-indexed; this can
  only raise the data spec's own threshold, values it dropped stay dropped);
- ``numeric_transform``: which numerical columns get a sign-safe log1p before the train
  mean/std standardisation ("auto": |train skew| > skew_threshold, plus the spec's list);
- ``numeric_buckets``: train quantile buckets per numerical column, as categorical fields
  ``bucket:<col>`` (code 1 = missing, 2.. = buckets); "replace" drops the numerical values;
- crosses: a categorical field ``cross:<a>x<b>`` per pair, its vocabulary the pairs of codes
  seen in train (at least ``min_frequency`` times when that is set; the ``cross_buckets - 1``
  most frequent, so the vocabulary with OOV has at most ``cross_buckets`` entries), the rest
  OOV 0. A name is a categorical field, else a numerical column's buckets (``bucket:<col>``
  or the column's name). Named pairs first, then up to ``top_k_crosses`` more: the best
  positive scores of :func:`ranking_models.data.interactions.score_pairs` among the pairs of
  categorical and bucket fields (a column with its own buckets excluded).

Fields come in this order: the base categorical fields, bucket fields, cross fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ranking_models.config import FeatureConfig
from ranking_models.data.arrays import SPLITS, BaseData, ProcessedData, Split
from ranking_models.data.interactions import PairScore, score_pairs
from ranking_models.data.stats import skewness
from ranking_models.errors import DataError, join_names

FEATURES_VERSION = 1
BUCKET_PREFIX = "bucket:"
CROSS_PREFIX = "cross:"


def is_default(features: FeatureConfig) -> bool:
    return features == FeatureConfig()


@dataclass
class _Field:
    name: str
    codes: dict[str, np.ndarray]  # per split
    vocab: int


@dataclass
class Derived:
    """The derived arrays and what was chosen (for the cache's meta.json and the logs)."""

    rows: dict[str, int]  # per split
    fields: list[_Field]
    x_num: dict[str, np.ndarray] | None  # None: the base x_num as it is
    num_names: list[str]
    log1p: list[str]
    crosses: list[tuple[str, str]]
    scores: list[PairScore] = field(default_factory=list)

    def meta(self) -> dict[str, Any]:
        return {
            "cat_names": [f.name for f in self.fields],
            "vocab_sizes": [f.vocab for f in self.fields],
            "num_names": self.num_names,
            "x_num": "base" if self.x_num is None else "own",
            "log1p": self.log1p,
            "crosses": [list(p) for p in self.crosses],
            "pair_scores": [[s.a, s.b, round(s.score, 6)] for s in self.scores],
        }

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for s in SPLITS:
            out[f"{s}_x_cat"] = _stack([f.codes[s] for f in self.fields], self.rows[s])
            if self.x_num is not None:
                out[f"{s}_x_num"] = self.x_num[s]
        return out


def derive(base: BaseData, features: FeatureConfig) -> Derived:
    """Apply the features section to the base arrays."""
    fields = _categorical(base, features.min_frequency)
    log1p = _log1p_columns(base, features)
    replace = features.numeric_buckets > 0 and features.numeric_bucket_mode == "replace"
    x_num: dict[str, np.ndarray] | None = None  # None: the base x_num as it is
    num_names = list(base.num_names)
    if replace:
        x_num = {s: np.zeros((len(base.splits[s]), 0), np.float32) for s in SPLITS}
        num_names = []
    elif set(log1p) != set(base.log1p):
        x_num = _standardised(base, log1p)
    buckets = _buckets(base, features.numeric_buckets) if features.numeric_buckets else []
    lookup = {f.name: f for f in fields} | {f.name: f for f in buckets}
    explicit: list[tuple[str, str]] = []
    for pair in features.crosses:
        resolved = _resolve_pair(pair, base, lookup)
        if frozenset(resolved) not in {frozenset(p) for p in explicit}:  # crossed once
            explicit.append(resolved)
    scores: list[PairScore] = []
    auto: list[tuple[str, str]] = []
    if features.top_k_crosses:
        scores, auto = _top_pairs(base, fields + buckets, explicit, features.top_k_crosses)
    min_count = features.min_frequency or 1
    crosses = [
        _cross(lookup[a], lookup[b], features.cross_buckets, min_count) for a, b in explicit + auto
    ]
    return Derived(
        rows={s: len(base.splits[s]) for s in SPLITS},
        fields=fields + buckets + crosses,
        x_num=x_num,
        num_names=num_names,
        log1p=log1p,
        crosses=explicit + auto,
        scores=scores,
    )


def assemble(
    base: BaseData, meta: dict[str, Any], arrays: dict[str, np.ndarray], key: str
) -> ProcessedData:
    """ProcessedData from derived arrays (fresh or from the cache) and the base."""
    splits = {}
    for s in SPLITS:
        x_num = arrays[f"{s}_x_num"] if meta["x_num"] == "own" else base.splits[s].x_num
        splits[s] = Split(arrays[f"{s}_x_cat"], x_num, base.splits[s].y)
    return ProcessedData(
        name=base.name,
        cat_names=list(meta["cat_names"]),
        vocab_sizes=[int(v) for v in meta["vocab_sizes"]],
        num_names=list(meta["num_names"]),
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        fingerprint=key,
    )


# ---------------------------------------------------------------- categorical + min_frequency


def _categorical(base: BaseData, min_frequency: int | None) -> list[_Field]:
    fields = []
    for j, (name, vocab) in enumerate(zip(base.cat_names, base.vocab_sizes, strict=True)):
        codes = {s: base.splits[s].x_cat[:, j] for s in SPLITS}
        if min_frequency is not None and min_frequency > base.min_frequency:
            mapping, vocab = frequency_mapping(codes["train"], vocab, min_frequency)
            codes = {s: mapping[c] for s, c in codes.items()}
        fields.append(_Field(name, codes, vocab))
    return fields


def frequency_mapping(
    train_codes: np.ndarray, vocab: int, min_frequency: int
) -> tuple[np.ndarray, int]:
    """Old code -> new code keeping the codes seen >= min_frequency times in train; new vocab."""
    counts = np.bincount(train_codes, minlength=vocab)
    keep = counts >= min_frequency
    keep[0] = False  # OOV stays OOV
    mapping = np.zeros(vocab, np.int64)
    mapping[keep] = np.arange(1, int(keep.sum()) + 1)
    return mapping, int(keep.sum()) + 1


# ---------------------------------------------------------------- numerical


def _log1p_columns(base: BaseData, features: FeatureConfig) -> list[str]:
    if features.numeric_transform == "standard":
        return list(base.log1p)
    if features.numeric_transform == "log1p":
        return list(base.num_names)
    raw = base.train.raw_num
    return [
        name
        for j, name in enumerate(base.num_names)
        if name in base.log1p or abs(skewness(raw[:, j])) > features.skew_threshold
    ]


def _standardised(base: BaseData, log1p: list[str]) -> dict[str, np.ndarray]:
    out = {s: np.empty(base.splits[s].raw_num.shape, np.float32) for s in SPLITS}
    for j, name in enumerate(base.num_names):
        mean, std = fit_standardiser(base.train.raw_num[:, j], name in log1p)
        for s in SPLITS:
            out[s][:, j] = apply_standardiser(
                base.splits[s].raw_num[:, j], name in log1p, mean, std
            )
    return out


def signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def fit_standardiser(train: np.ndarray, log1p: bool) -> tuple[float, float]:
    """Train mean and std of the finite values (after the log1p when asked)."""
    x = np.asarray(train, dtype=np.float64)
    if log1p:
        x = signed_log1p(x)
    finite = x[np.isfinite(x)]
    mean = float(finite.mean()) if finite.size else 0.0
    std = float(finite.std()) if finite.size else 1.0
    return mean, std


def apply_standardiser(col: np.ndarray, log1p: bool, mean: float, std: float) -> np.ndarray:
    """Missing (non-finite) values -> the train mean, then (x - mean) / std. float64."""
    x = np.asarray(col, dtype=np.float64)
    if log1p:
        x = signed_log1p(x)
    x = np.where(np.isfinite(x), x, mean)
    return (x - mean) / (std if std > 1e-12 else 1.0)


def _buckets(base: BaseData, n_buckets: int) -> list[_Field]:
    fields = []
    for j, name in enumerate(base.num_names):
        edges = bucket_edges(base.train.raw_num[:, j], n_buckets)
        codes = {s: bucketize(base.splits[s].raw_num[:, j], edges) for s in SPLITS}
        fields.append(_Field(BUCKET_PREFIX + name, codes, len(edges) + 3))
    return fields


def bucket_edges(train: np.ndarray, n_buckets: int) -> np.ndarray:
    """Inner edges of n_buckets train quantile buckets (fewer when values repeat)."""
    finite = train[np.isfinite(train)]
    if finite.size == 0 or n_buckets < 2:
        return np.zeros(0)
    return np.unique(np.quantile(finite, np.linspace(0.0, 1.0, n_buckets + 1)[1:-1]))


def bucketize(col: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Codes: 1 = missing, 2 + the bucket index otherwise (0, the OOV index, is unused)."""
    codes = np.searchsorted(edges, col, side="right").astype(np.int64) + 2
    codes[~np.isfinite(col)] = 1
    return codes


# ---------------------------------------------------------------- crosses


def _resolve_pair(
    pair: tuple[str, str], base: BaseData, lookup: dict[str, _Field]
) -> tuple[str, str]:
    a, b = (_resolve_name(n, base, lookup) for n in pair)
    if a == b:
        raise DataError(f"features.crosses: cannot cross '{pair[0]}' with itself; name two fields")
    return a, b


def _resolve_name(name: str, base: BaseData, lookup: dict[str, _Field]) -> str:
    """A categorical field, else `bucket:<col>` / a numerical column (its quantile buckets)."""
    if name in base.cat_names:
        return name
    col = name.removeprefix(BUCKET_PREFIX)
    if col in base.num_names:
        if BUCKET_PREFIX + col not in lookup:
            raise DataError(
                f"features.crosses: '{name}' is a numerical column; a cross uses its quantile "
                "buckets: set features.numeric_buckets > 0 (e.g. 32)"
            )
        return BUCKET_PREFIX + col
    numeric = f"; numerical columns (crossed as their buckets): {join_names(base.num_names)}"
    raise DataError(
        f"features.crosses: unknown field '{name}'; categorical fields: "
        f"{join_names(base.cat_names)}{numeric if base.num_names else ''}"
    )


def _top_pairs(
    base: BaseData, fields: list[_Field], taken: list[tuple[str, str]], k: int
) -> tuple[list[PairScore], list[tuple[str, str]]]:
    done = {frozenset(p) for p in taken}
    names = [f.name for f in fields]
    pairs = [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if frozenset((a, b)) not in done and not _same_column(a, b)
    ]
    train = {f.name: f.codes["train"] for f in fields}
    scores = score_pairs(train, base.train.y, pairs)
    chosen = [(s.a, s.b) for s in scores if s.score > 0][:k]
    return scores, chosen


def _same_column(a: str, b: str) -> bool:
    # MovieLens has "age" both as a categorical field and as a numerical column.
    return a.removeprefix(BUCKET_PREFIX) == b.removeprefix(BUCKET_PREFIX)


def _cross(a: _Field, b: _Field, cap: int, min_count: int) -> _Field:
    keys = {s: a.codes[s] * b.vocab + b.codes[s] for s in SPLITS}
    values, counts = np.unique(keys["train"], return_counts=True)
    keep = counts >= min_count
    values, counts = values[keep], counts[keep]
    if len(values) > cap - 1:
        # the most frequent; among equals the smaller key, so the choice is deterministic
        order = np.lexsort((values, -counts))[: cap - 1]
        values = np.sort(values[order])
    codes = {s: lookup_codes(values, k) for s, k in keys.items()}
    return _Field(f"{CROSS_PREFIX}{a.name}x{b.name}", codes, len(values) + 1)


def lookup_codes(vocab: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """1 + the position of each key in the sorted vocab, 0 when absent."""
    if len(vocab) == 0:
        return np.zeros(len(keys), np.int64)
    pos = np.clip(np.searchsorted(vocab, keys), 0, len(vocab) - 1)
    return np.where(vocab[pos] == keys, pos + 1, 0).astype(np.int64)


def _stack(cols: list[np.ndarray], n: int) -> np.ndarray:
    if not cols:
        return np.zeros((n, 0), np.int64)
    return np.stack(cols, axis=1)
