import math

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from ranking_models import metrics


@pytest.mark.parametrize("seed", range(5))
def test_auc_and_logloss_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 2000
    y = (rng.random(n) < 0.3).astype(np.float32)
    p = np.clip(0.3 + 0.2 * (y - 0.3) + rng.normal(0, 0.2, n), 0.001, 0.999)
    assert metrics.auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert metrics.logloss(y, p) == pytest.approx(log_loss(y, p), rel=1e-9)


def test_auc_with_ties_matches_sklearn() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 500)
    p = rng.integers(0, 5, 500) / 5.0  # heavy ties
    assert metrics.auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_auc_single_class_is_nan() -> None:
    assert math.isnan(metrics.auc(np.ones(4), np.linspace(0, 1, 4)))


def test_ne_uses_train_background_ctr_and_ne_eval_uses_eval_ctr() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < 0.2).astype(float)
    p = np.full(1000, 0.25)
    ll = log_loss(y, p)
    h = lambda q: -(q * math.log(q) + (1 - q) * math.log(1 - q))  # noqa: E731
    out = metrics.evaluate(y, p, background_ctr=0.25)
    assert out["ne"] == pytest.approx(ll / h(0.25))
    assert out["ne_eval"] == pytest.approx(ll / h(y.mean()))
    assert out["calibration"] == pytest.approx(0.25 / y.mean())
    assert out["auc"] == pytest.approx(0.5)
    assert set(out) == {"auc", "logloss", "ne", "ne_eval", "calibration"}


def test_predicting_the_base_rate_has_ne_one() -> None:
    y = np.array([1, 0, 0, 0] * 250, dtype=float)
    assert metrics.normalized_entropy(y, np.full(1000, 0.25), 0.25) == pytest.approx(1.0)


def test_logloss_clips_extreme_predictions() -> None:
    assert math.isfinite(metrics.logloss(np.array([1.0, 0.0]), np.array([0.0, 1.0])))
