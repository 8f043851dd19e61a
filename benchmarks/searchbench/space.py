"""The baseline's hyperparameter space for TPE and random search, written once.

Every range is centred on the family's default (the baseline config), the same rule for every
data set; nothing is tuned per data set. Knobs exist only where the family has the key.

| knob (Optuna param) | config key(s) | range |
|---|---|---|
| embedding_dim | model.embedding_dim | int, log scale, [d/4, 4d] |
| mlp_width | model.hidden_dims[0] | int, log scale, [w/4, 4w] |
| mlp_depth | len(model.hidden_dims) | int, [1, depth+2]; each layer half the previous |
| dropout | model.dropout | float, [0, max(0.5, 2.5d) capped at 0.9] |
| cross_layers | model.cross_layers (dcn_v2) | int, [0, 2d] |
| lr_dense, lr_sparse | train.lr_dense, train.lr_sparse | float, log scale, [d/10, 10d] |
| weight_decay | train.weight_decay | one of 0, 1e-6, 1e-5, 1e-4, 1e-3 (0 has no log scale) |
| batch_size_log2 | train.batch_size | 2**k, k in [log2(d)-2, log2(d)+2] |
| epochs | train.epochs | int, [1, 3d] |

The baseline itself is a point of the space (:func:`baseline_params`), so every search can start
from it.
"""

from __future__ import annotations

import math
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from ranking_models.config import apply_delta

WEIGHT_DECAYS: tuple[float, ...] = (0.0, 1e-6, 1e-5, 1e-4, 1e-3)


def search_space(baseline: dict[str, Any]) -> dict[str, BaseDistribution]:
    """Optuna distributions of the knobs valid for the baseline's family."""
    model, train = baseline["model"], baseline["train"]
    space: dict[str, BaseDistribution] = {}
    if "embedding_dim" in model:
        d = int(model["embedding_dim"])
        space["embedding_dim"] = IntDistribution(max(1, d // 4), d * 4, log=True)
    if model.get("hidden_dims"):
        width, depth = int(model["hidden_dims"][0]), len(model["hidden_dims"])
        space["mlp_width"] = IntDistribution(max(1, width // 4), width * 4, log=True)
        space["mlp_depth"] = IntDistribution(1, depth + 2)
    if "dropout" in model:
        space["dropout"] = FloatDistribution(0.0, min(0.9, max(0.5, 2.5 * model["dropout"])))
    if "cross_layers" in model:
        space["cross_layers"] = IntDistribution(0, max(1, 2 * int(model["cross_layers"])))
    for key in ("lr_dense", "lr_sparse"):
        space[key] = FloatDistribution(train[key] / 10, train[key] * 10, log=True)
    if train["weight_decay"] not in WEIGHT_DECAYS:
        raise ValueError(f"baseline weight_decay {train['weight_decay']} is not in the space")
    space["weight_decay"] = CategoricalDistribution(WEIGHT_DECAYS)
    k = round(math.log2(train["batch_size"]))
    space["batch_size_log2"] = IntDistribution(max(0, k - 2), k + 2)
    space["epochs"] = IntDistribution(1, 3 * int(train["epochs"]))
    return space


def hidden_dims(width: int, depth: int, multiple: int = 1) -> list[int]:
    """An MLP that halves its width at each layer, every width a multiple of `multiple`."""
    dims = []
    for i in range(depth):
        w = max(1, round(width / 2**i))
        dims.append(max(multiple, round(w / multiple) * multiple))
    return dims


def to_config(baseline: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The baseline with the sampled knobs set (validated by ranking_models)."""
    delta: dict[str, Any] = {}
    simple = {
        "embedding_dim": "model.embedding_dim",
        "dropout": "model.dropout",
        "cross_layers": "model.cross_layers",
        "lr_dense": "train.lr_dense",
        "lr_sparse": "train.lr_sparse",
        "weight_decay": "train.weight_decay",
        "epochs": "train.epochs",
    }
    for name, key in simple.items():
        if name in params:
            delta[key] = params[name]
    if "mlp_width" in params:
        # FinalMLP's fusion heads must divide the last width
        multiple = int(baseline["model"].get("n_heads", 1))
        delta["model.hidden_dims"] = hidden_dims(params["mlp_width"], params["mlp_depth"], multiple)
    if "batch_size_log2" in params:
        delta["train.batch_size"] = 2 ** params["batch_size_log2"]
    return apply_delta(baseline, delta)


def baseline_params(baseline: dict[str, Any]) -> dict[str, Any]:
    """The point of the space that is the baseline config (to enqueue as a search's trial 0)."""
    model, train = baseline["model"], baseline["train"]
    params: dict[str, Any] = {}
    space = search_space(baseline)
    if "embedding_dim" in space:
        params["embedding_dim"] = model["embedding_dim"]
    if "mlp_width" in space:
        params["mlp_width"] = model["hidden_dims"][0]
        params["mlp_depth"] = len(model["hidden_dims"])
    if "dropout" in space:
        params["dropout"] = model["dropout"]
    if "cross_layers" in space:
        params["cross_layers"] = model["cross_layers"]
    params |= {k: train[k] for k in ("lr_dense", "lr_sparse", "weight_decay", "epochs")}
    params["batch_size_log2"] = round(math.log2(train["batch_size"]))
    return params
