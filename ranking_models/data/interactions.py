"""Pairwise label interaction of categorical fields, scored so that it does not reward
high-cardinality combinations that only memorise the sample.

On a prefix of the train split (the train split is in random order, so a prefix is a random
sample fixed by the spec's ``split_seed``), first 70% to fit, the rest held out:

1. fit the additive logistic model over all the fields, ``logit = b0 + sum_f alpha_f[x_f]``
   (L2-penalised per-value offsets, a few backfitting Newton sweeps);
2. for a pair (a, b), fit a penalised offset per seen combination on top of it: the smoothed
   per-combination label rate with the additive model as its prior, in logit space;
3. score = held-out log-loss of (1) minus that of (2), divided by the entropy of the base
   rate: an NE gain. A combination seen only in the fit part adds nothing on held-out rows,
   so memorising rare combinations scores about 0; so does a pair that only stands in for
   another field's main effect (e.g. age x occupation for the user), because the additive
   model already has every field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_ROWS = 200_000
MIN_ROWS = 50_000
# Sample rows x pairs scored: many fields get a smaller sample (each pair costs O(rows)).
ROW_PAIR_BUDGET = 12_000_000
FIT_SHARE = 0.7
PRIOR_ROWS = 10.0  # strength of the L2 penalty, in rows at the base rate
BACKFIT_STEPS = 4
COMBO_STEPS = 2
_DENSE_COMBOS = 1 << 22


@dataclass(frozen=True)
class PairScore:
    a: str
    b: str
    score: float


def sample_rows(n_train: int, n_pairs: int, max_rows: int = MAX_ROWS) -> int:
    """How many train rows (a prefix) score n_pairs pairs."""
    budget = ROW_PAIR_BUDGET // max(n_pairs, 1)
    return min(n_train, max_rows, max(MIN_ROWS, budget))


def score_pairs(
    fields: dict[str, np.ndarray],
    y: np.ndarray,
    pairs: list[tuple[str, str]] | None = None,
    max_rows: int = MAX_ROWS,
) -> list[PairScore]:
    """Scores of the pairs (default: all pairs of fields), best first.

    fields: train codes per field (any integers), y: train labels, both in the train order.
    Every field enters the additive model, whether it is in a pair or not.
    """
    names = list(fields)
    if pairs is None:
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    if not pairs:
        return []
    n = sample_rows(len(y), len(pairs), max_rows)
    n_fit = int(n * FIT_SHARE)
    if n_fit < 10 or n - n_fit < 10:
        return [PairScore(a, b, 0.0) for a, b in pairs]
    model = _Additive(np.asarray(y[:n], dtype=np.float64), n_fit)
    dense = {f: _dense(fields[f][:n]) for f in names}
    model.fit(list(dense.values()))
    scores = [PairScore(a, b, model.pair_gain(dense[a], dense[b])) for a, b in pairs]
    return sorted(scores, key=lambda s: (-s.score, s.a, s.b))


def _dense(codes: np.ndarray) -> tuple[np.ndarray, int]:
    values, inverse = np.unique(codes, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), len(values)


class _Additive:
    """The additive model on the fit rows, its logit on every sample row."""

    def __init__(self, y: np.ndarray, n_fit: int) -> None:
        self.y_fit, self.y_hold = y[:n_fit], y[n_fit:]
        self.n_fit = n_fit
        p0 = float(np.clip(self.y_fit.mean(), 1e-4, 1 - 1e-4))
        self.lam = PRIOR_ROWS * p0 * (1 - p0)
        self.entropy = float(-(p0 * np.log(p0) + (1 - p0) * np.log(1 - p0)))
        self.z = np.full(len(y), float(np.log(p0 / (1 - p0))))

    def fit(self, fields: list[tuple[np.ndarray, int]]) -> None:
        offsets = [np.zeros(k) for _, k in fields]
        for _ in range(BACKFIT_STEPS):
            for (idx, k), alpha in zip(fields, offsets, strict=True):
                step = self._newton(idx[: self.n_fit], k, self.z[: self.n_fit], alpha)
                alpha += step
                self.z += step[idx]

    def pair_gain(self, a: tuple[np.ndarray, int], b: tuple[np.ndarray, int]) -> float:
        (ia, ka), (ib, kb) = a, b
        combo, size = _combos(ia, ib, kb, ka * kb)
        fit, z_fit = combo[: self.n_fit], self.z[: self.n_fit]
        gamma = np.zeros(size)
        for _ in range(COMBO_STEPS):
            gamma += self._newton(fit, size, z_fit + gamma[fit], gamma)
        z_hold, c_hold = self.z[self.n_fit :], combo[self.n_fit :]
        gain = _logloss(z_hold, self.y_hold) - _logloss(z_hold + gamma[c_hold], self.y_hold)
        return float(gain / self.entropy)

    def _newton(self, idx: np.ndarray, k: int, z: np.ndarray, current: np.ndarray) -> np.ndarray:
        """One penalised Newton step for per-index offsets (on fit rows)."""
        p = 1.0 / (1.0 + np.exp(-z))
        grad = np.bincount(idx, self.y_fit - p, k) - self.lam * current
        hess = np.bincount(idx, p * (1.0 - p), k) + self.lam
        return grad / hess


def _combos(ia: np.ndarray, ib: np.ndarray, kb: int, size: int) -> tuple[np.ndarray, int]:
    key = ia * kb + ib
    if size <= _DENSE_COMBOS:
        return key, size
    return _dense(key)


def _logloss(z: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, z) - y * z))
