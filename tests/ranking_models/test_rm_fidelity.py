"""The best epoch, early stopping, fidelity rungs and pruning, with real training on tiny data.

Two tiny settings with known curve shapes (asserted, so a changed premise fails loudly):
OVERFIT (high learning rates: valid logloss is best at epoch 1, then rises) and STEADY
(default rates: valid logloss improves every epoch for the first 3 epochs).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from rm_helpers import TINY_DATA, read_metrics, read_result, set_train, tiny_config, write_spec

from ranking_models import train as train_mod
from ranking_models.config import validate_config
from ranking_models.contracts import AttemptResult, PruneRule, read_contract
from ranking_models.data.processing import load_data
from ranking_models.trainer import CHECKPOINT_NAME, Trainer, best_index, stop_reason

OVERFIT = {"lr_dense": 0.02, "lr_sparse": 0.2}


def _run(spec: Path, attempt: int = 1, code: int = 0) -> dict[str, Any]:
    assert train_mod.run_trial(spec) == code
    result = read_result(spec, attempt)
    read_contract(spec.parent / "attempts" / str(attempt) / "result.json", AttemptResult)
    return result


def _logloss(result: dict[str, Any]) -> list[float]:
    return [c["valid"]["logloss"] for c in result["curve"]]


def _trained_epochs(spec: Path, attempt: int) -> list[int]:
    return sorted({e["epoch"] for e in read_metrics(spec, attempt) if e["event"] == "train"})


def _checkpoint(spec: Path) -> dict[str, Any]:
    return torch.load(spec.parent / "checkpoint" / CHECKPOINT_NAME, weights_only=True)


def _test_metrics_of(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, float]:
    trainer = Trainer(validate_config(config), load_data(TINY_DATA), seed=0)
    trainer.model.load_state_dict(state)
    return trainer.evaluate("test")


# ---------------------------------------------------------------- pure decisions


def test_best_index_direction_ties_and_non_finite() -> None:
    history = [{"auc": 0.7, "logloss": 0.5}, {"auc": 0.8, "logloss": 0.5}, {"auc": 0.8}]
    assert best_index(history, "auc") == 1  # a tie keeps the earlier epoch
    assert best_index(history, "logloss") == 0
    assert best_index([{"ne": math.nan}, {"ne": 0.9}], "ne") == 1
    assert best_index([], "ne") is None


def test_stop_reason_precedence() -> None:
    train = validate_config(tiny_config(epochs=10, early_stopping_patience=2, stop_at_epoch=3))
    t = train.train
    worse = [{"logloss": 0.5}, {"logloss": 0.6}, {"logloss": 0.7}]
    assert stop_reason(worse[:2], t) is None
    assert stop_reason(worse, t) == "early_stopping"  # also at the rung: early stopping says more
    better = [{"logloss": 0.5}, {"logloss": 0.4}, {"logloss": 0.3}]
    assert stop_reason(better, t) == "rung"
    rule = PruneRule(metric="logloss", direction="min", thresholds={2: 0.2})
    assert stop_reason(better, t, rule) == "pruned"
    horizon = validate_config(tiny_config(epochs=3, stop_at_epoch=3)).train
    assert stop_reason(better, horizon, rule) is None  # the horizon is reached: not a stop


# ---------------------------------------------------------------- best epoch


def test_best_epoch_weights_are_restored_for_test(tmp_path: Path) -> None:
    config = tiny_config("dcn_v2", epochs=4, **OVERFIT)
    result = _run(write_spec(tmp_path / "long", config=config))
    losses = _logloss(result)
    assert losses.index(min(losses)) == 1 and losses[3] > losses[1]  # premise: overfits
    assert result["best_epoch"] == 1 and result["epochs_completed"] == 4
    assert result["valid"] == result["curve"][1]["valid"] and result["stopped"] is None
    last_weights = _checkpoint(write_spec(tmp_path / "long", config=config))["model"]
    # The same trajectory stopped after 2 epochs (constant LR: the horizon does not matter):
    # its last weights are epoch 1's, evaluated here without the trainer's best-epoch logic.
    short_config = tiny_config("dcn_v2", epochs=2, **OVERFIT)
    short = write_spec(tmp_path / "short", config=short_config)
    assert _run(short)["curve"] == result["curve"][:2]
    epoch_1_weights = _checkpoint(short)["model"]
    assert result["test"] == pytest.approx(_test_metrics_of(epoch_1_weights, config), rel=1e-12)
    assert result["test"]["logloss"] < _test_metrics_of(last_weights, config)["logloss"]


def test_monitor_auc_is_maximised(tmp_path: Path) -> None:
    result = _run(write_spec(tmp_path, config=tiny_config("fm", epochs=3, monitor="auc")))
    aucs = [c["valid"]["auc"] for c in result["curve"]]
    assert result["best_epoch"] == aucs.index(max(aucs))
    assert result["valid"]["auc"] == max(aucs)


# ---------------------------------------------------------------- early stopping


def test_early_stopping_stops_reports_and_stays_stopped(tmp_path: Path) -> None:
    config = tiny_config("dcn_v2", epochs=8, early_stopping_patience=2, **OVERFIT)
    spec = write_spec(tmp_path, config=config)
    result = _run(spec)
    assert result["stopped"] == "early_stopping" and result["status"] == "succeeded"
    assert result["best_epoch"] == 1 and result["epochs_completed"] == 4  # epochs 2, 3 worse
    assert _trained_epochs(spec, 1) == [0, 1, 2, 3]
    assert result["valid"] == result["curve"][1]["valid"]
    again = _run(spec, attempt=2)  # a requeued attempt takes the same decision, trains nothing
    assert _trained_epochs(spec, 2) == [] and again["samples_seen"] == 0
    assert again["stopped"] == "early_stopping" and again["resumed_from_epoch"] == 4
    assert again["test"] == result["test"] and again["curve"] == result["curve"]


# ---------------------------------------------------------------- rungs


@pytest.mark.parametrize("sparse_optimizer", ["same", "rowwise_adagrad"])
def test_rung_stop_and_continuation_equal_an_uninterrupted_run(
    tmp_path: Path, sparse_optimizer: str
) -> None:
    train = {"epochs": 4, "lr_schedule": "cosine", "sparse_optimizer": sparse_optimizer}
    reference = write_spec(tmp_path / "ref", config=tiny_config("dcn_v2", **train))
    expected = _run(reference)
    spec = write_spec(tmp_path / "rungs", config=tiny_config("dcn_v2", stop_at_epoch=1, **train))
    first = _run(spec)
    assert first["stopped"] == "rung" and first["epochs_completed"] == 1
    assert first["test"] is not None and first["curve"] == expected["curve"][:1]
    set_train(spec, stop_at_epoch=3)
    second = _run(spec, attempt=2)
    assert second["stopped"] == "rung" and second["resumed_from_epoch"] == 1
    assert _trained_epochs(spec, 2) == [1, 2] and second["samples_seen"] == 2 * 3200
    set_train(spec, stop_at_epoch=None)
    final = _run(spec, attempt=3)
    assert final["stopped"] is None and final["epochs_completed"] == 4
    assert final["curve"] == expected["curve"]  # the whole curve, epochs of earlier attempts too
    assert final["best_epoch"] == expected["best_epoch"]
    assert final["test"] == pytest.approx(expected["test"], rel=1e-9, abs=1e-12)
    lrs = [e["lr"] for e in read_metrics(reference) if e["event"] == "train"]
    continued = [e["lr"] for a in (1, 2, 3) for e in read_metrics(spec, a) if e["event"] == "train"]
    assert continued == lrs  # the cosine schedule ran over `epochs` all along


def test_checkpoint_past_the_rung_is_reported_as_of_the_rung(tmp_path: Path) -> None:
    config = tiny_config("dcn_v2", epochs=4, **OVERFIT)
    spec = write_spec(tmp_path, config=config)
    full = _run(spec)
    assert full["best_epoch"] == 1  # premise: the best is within the first 2 epochs
    checkpoint = (spec.parent / "checkpoint" / CHECKPOINT_NAME).read_bytes()
    set_train(spec, stop_at_epoch=2)
    result = _run(spec, attempt=2)
    assert _trained_epochs(spec, 2) == [] and result["samples_seen"] == 0
    assert result["stopped"] == "rung" and result["epochs_completed"] == 2
    assert result["curve"] == full["curve"][:2] and result["best_epoch"] == 1
    assert result["test"] == full["test"]  # the same best weights
    assert (spec.parent / "checkpoint" / CHECKPOINT_NAME).read_bytes() == checkpoint


def test_checkpoint_past_the_rung_without_its_best_weights_trains_from_scratch(
    tmp_path: Path,
) -> None:
    spec = write_spec(tmp_path / "full", config=tiny_config("dcn_v2", epochs=3))
    full = _run(spec)
    losses = _logloss(full)
    assert losses == sorted(losses, reverse=True)  # premise: every epoch improves, best is 2
    checkpoint = (spec.parent / "checkpoint" / CHECKPOINT_NAME).read_bytes()
    set_train(spec, stop_at_epoch=1)
    result = _run(spec, attempt=2)
    assert result["resumed_from_epoch"] == 0 and _trained_epochs(spec, 2) == [0]
    fresh = _run(
        write_spec(tmp_path / "fresh", config=tiny_config("dcn_v2", epochs=3, stop_at_epoch=1))
    )
    assert result["test"] == fresh["test"] and result["curve"] == fresh["curve"]
    assert (spec.parent / "checkpoint" / CHECKPOINT_NAME).read_bytes() == checkpoint  # kept


def test_stop_at_epoch_is_not_in_the_checkpoint_fingerprint() -> None:
    data = load_data(TINY_DATA)
    fingerprints = {
        Trainer(validate_config(tiny_config(**train)), data, seed=0).fingerprint
        for train in ({}, {"stop_at_epoch": 1}, {"stop_at_epoch": 2})
    }
    assert len(fingerprints) == 1
    other = Trainer(validate_config(tiny_config(early_stopping_patience=3)), data, seed=0)
    assert other.fingerprint not in fingerprints
    assert Trainer(validate_config(tiny_config()), data, seed=1).fingerprint not in fingerprints


# ---------------------------------------------------------------- pruning


def test_pruning_stops_with_the_best_so_far(tmp_path: Path) -> None:
    rule = {"metric": "logloss", "direction": "min", "thresholds": {"1": 0.3}}
    spec = write_spec(tmp_path / "pruned", config=tiny_config("dcn_v2", epochs=4), prune=rule)
    result = _run(spec)
    assert result["stopped"] == "pruned" and result["status"] == "succeeded"
    assert result["epochs_completed"] == 2 and _trained_epochs(spec, 1) == [0, 1]
    assert result["valid"] == result["curve"][result["best_epoch"]]["valid"]
    assert result["test"] is not None
    lenient = {"metric": "auc", "direction": "max", "thresholds": {"0": 0.5, "1": 0.5}}
    kept = write_spec(tmp_path / "kept", config=tiny_config("dcn_v2", epochs=3), prune=lenient)
    assert _run(kept)["stopped"] is None


# ---------------------------------------------------------------- non-finite valid metric


def test_non_finite_monitored_valid_metric_fails_the_attempt(tmp_path: Path) -> None:
    # One step per epoch at an absurd learning rate: the first update makes the weights
    # non-finite before any training loss can show it, so only the valid evaluation can.
    config = tiny_config(
        "fm",
        batch_size=4096,
        lr_dense=1e30,
        lr_sparse=1e30,
        optimizer="sgd",
        momentum=0.0,
        loss_explosion_factor=None,
        grad_norm_threshold=None,
    )
    spec = write_spec(tmp_path, config=config)
    result = _run(spec, code=1)
    failure = result["failure"]
    assert result["status"] == "failed" and failure["kind"] == "error"
    assert "valid logloss" in failure["message"] and failure["epoch"] == 0
    assert result["test"] is None and result["curve"] == [] and result["valid"] is None
    assert not (spec.parent / "checkpoint" / CHECKPOINT_NAME).exists()  # no NaN state saved
    evals = [e for e in read_metrics(spec) if e["event"] == "eval"]
    assert len(evals) == 1 and math.isnan(evals[0]["logloss"])


def test_failure_after_good_epochs_reports_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_epoch = Trainer._train_epoch

    def oom_in_epoch_2(self: Trainer, epoch: int) -> float:
        if epoch == 2:  # a real OOM cannot be provoked on CPU; the two epochs before are real
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_epoch(self, epoch)

    monkeypatch.setattr(Trainer, "_train_epoch", oom_in_epoch_2)
    spec = write_spec(tmp_path, config=tiny_config("dcn_v2", epochs=4))
    result = _run(spec, code=4)
    assert result["failure"]["kind"] == "oom" and result["failure"]["epoch"] == 2
    assert result["epochs_completed"] == 2 and [c["epoch"] for c in result["curve"]] == [0, 1]
    assert result["valid"] == result["curve"][result["best_epoch"]]["valid"]
    assert result["test"] is None and result["samples_seen"] == 2 * 3200
    assert 0 < result["device_time_s"] <= result["wall_time_s"]
