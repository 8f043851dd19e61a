"""Evaluation metrics on numpy arrays (labels 0/1, predicted probabilities). No torch.

- AUC: probability that a random positive scores above a random negative (ties count 1/2).
- logloss: mean binary cross-entropy, predictions clipped to [EPS, 1 - EPS].
- NE (normalized entropy, He et al. 2014): logloss / H(p) where p is the background CTR of
  the *training set*; NE < 1 means better than always predicting the base rate.
- ne_eval: logloss / H(mean label of the evaluated set) (TorchRec's variant).
- calibration: mean prediction / observed CTR (1.0 is perfectly calibrated on average).
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-7


def auc(labels: np.ndarray, preds: np.ndarray) -> float:
    """ROC AUC via the Mann-Whitney rank statistic; nan when only one class is present."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.asarray(preds, dtype=np.float64).ravel()
    n_pos = float(y.sum())
    n_neg = float(len(y) - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each tie group
    ranks = avg_rank[inverse]
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(labels: np.ndarray, preds: np.ndarray) -> float:
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(preds, dtype=np.float64).ravel(), EPS, 1 - EPS)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def entropy(p: float) -> float:
    """Binary entropy H(p) in nats."""
    p = min(max(p, EPS), 1 - EPS)
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def normalized_entropy(labels: np.ndarray, preds: np.ndarray, background_ctr: float) -> float:
    return logloss(labels, preds) / entropy(background_ctr)


def calibration(labels: np.ndarray, preds: np.ndarray) -> float:
    observed = float(np.mean(labels))
    return float(np.mean(preds)) / observed if observed > 0 else float("nan")


def evaluate(labels: np.ndarray, preds: np.ndarray, background_ctr: float) -> dict[str, float]:
    """All metrics of an evaluation: auc, logloss, ne, ne_eval, calibration."""
    ll = logloss(labels, preds)
    return {
        "auc": auc(labels, preds),
        "logloss": ll,
        "ne": ll / entropy(background_ctr),
        "ne_eval": ll / entropy(float(np.mean(labels))),
        "calibration": calibration(labels, preds),
    }
