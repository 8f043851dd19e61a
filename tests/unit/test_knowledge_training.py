"""The shipped knowledge base's candidates train real models: every delta the rules propose on
a real data profile is one the trainer and the feature processing accept."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from ranking_models.config import apply_delta, default_config, validate_config
from rea_cli.planner.knowledge import candidates, load_knowledge
from rea_cli.planner.rules import profile_facts

# the data profile and the trial config's features section landed together (rm-data)
profile = pytest.importorskip("ranking_models.data.profile")

# Planted effects make the feature rules fire (non-monotone numerics, a strong pair).
DATA = {
    "name": "synthetic",
    "n_rows": 3000,
    "n_categorical": 4,
    "n_numerical": 3,
    "vocab_size": 40,
    "effects": ["nonmonotone_numeric", "cross"],
}
CURVE = {
    "improving_at_end": True,
    "last_gain_rel": 0.02,
    "best_epoch_frac": 0.5,
    "overfit_gap": 0.1,
    "unstable": True,
    "epochs": 2,
}


def _small(family: str) -> dict[str, Any]:
    """The family's defaults, small and short enough to train in a fraction of a second."""
    delta: dict[str, Any] = {"train.epochs": 2, "train.batch_size": 256}
    model = default_config(family)["model"]
    if "hidden_dims" in model:
        delta["model.hidden_dims"] = [32, 16]
    if "hidden_dims_2" in model:
        delta["model.hidden_dims_2"] = [32, 16]
    if "embedding_dim" in model:
        delta["model.embedding_dim"] = 8
    return apply_delta(default_config(family), delta)


def _train(config: dict[str, Any], tmp: Path) -> float:
    import torch

    from ranking_models.data.processing import load_data
    from ranking_models.trainer import Trainer

    trial = validate_config(config)
    data = load_data(DATA, trial.features, use_cache=False)
    torch.manual_seed(0)
    outcome = Trainer(trial, data, seed=0, checkpoint_dir=tmp, device=torch.device("cpu")).run()
    return float(outcome.valid["logloss"])


@pytest.mark.slow
@pytest.mark.parametrize("family", ["dcn_v2", "lr"])
def test_shipped_candidates_train(family: str, tmp_path: Path) -> None:
    data_profile = profile.profile_data(DATA, use_cache=False)
    assert data_profile.n_nonmonotone >= 1 and data_profile.best_pair_score > 0.002
    base = _small(family)
    facts = profile_facts(base, data_profile.model_dump(), CURVE)
    found, dropped = candidates(load_knowledge().strategies, base, facts)
    assert [d for d in dropped if d.kind == "invalid"] == []
    # one level per strategy keeps the test short; the levels differ only in values
    firsts = {c.strategy_id: c for c in reversed(found)}
    assert {"numeric_buckets", "crosses_top_k", "train_longer"} <= set(firsts)
    for i, c in enumerate(firsts.values()):
        loss = _train(apply_delta(base, c.delta), tmp_path / str(i))
        assert math.isfinite(loss), c.hypothesis_id
