"""Trial configs: what a hypothesis can change, validated and frozen. Imports no torch.

A config is plain data ``{"model": {"family": ...}, "train": {...}, "features": {...}}``.
A hypothesis is a delta in dotted keys (``{"model.embedding_dim": 32}``) applied with
:func:`apply_delta`.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ranking_models.errors import ConfigError, describe_pydantic_error

__all__ = [
    "FAMILIES",
    "ConfigError",
    "FeatureConfig",
    "TrainConfig",
    "TrialConfig",
    "apply_delta",
    "default_config",
    "valid_keys",
    "validate_config",
]

FAMILIES: tuple[str, ...] = ("lr", "fm", "wide_deep", "deepfm", "dcn_v2", "dlrm", "finalmlp")

Norm = Literal["none", "batch", "layer"]
Activation = Literal["relu", "gelu", "silu"]
PositiveDims = list[Annotated[int, Field(ge=1, le=65536)]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LRModel(_Strict):
    """Logistic regression on one-hot categorical features and the numerical features."""

    family: Literal["lr"] = "lr"


class FMModel(_Strict):
    """Factorization machine: first-order terms + pairwise dot products of field embeddings."""

    family: Literal["fm"] = "fm"
    embedding_dim: int = Field(16, ge=1, le=1024)


class _DeepModel(_Strict):
    """Knobs shared by the models with an MLP ("deep" part)."""

    embedding_dim: int = Field(16, ge=1, le=1024)
    hidden_dims: PositiveDims = Field(default_factory=lambda: [128, 64])
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    norm: Norm = "none"
    activation: Activation = "relu"


class WideDeepModel(_DeepModel):
    """Wide & Deep: a linear (wide) part plus an MLP over the concatenated embeddings."""

    family: Literal["wide_deep"] = "wide_deep"


class DeepFMModel(_DeepModel):
    """DeepFM: FM and an MLP sharing the field embeddings."""

    family: Literal["deepfm"] = "deepfm"


class DCNv2Model(_DeepModel):
    """DCN-v2: cross network (full or low-rank) stacked before, or parallel to, an MLP."""

    family: Literal["dcn_v2"] = "dcn_v2"
    cross_layers: int = Field(3, ge=0, le=16)
    structure: Literal["stacked", "parallel"] = "parallel"
    low_rank: int | None = Field(None, ge=1, le=4096)


class DLRMModel(_DeepModel):
    """DLRM: bottom MLP on numerical features, dot interaction, top MLP (hidden_dims)."""

    family: Literal["dlrm"] = "dlrm"
    bottom_dims: PositiveDims = Field(default_factory=lambda: [64])


class FinalMLPModel(_DeepModel):
    """FinalMLP: two MLP streams with feature gating, fused by multi-head bilinear fusion."""

    family: Literal["finalmlp"] = "finalmlp"
    hidden_dims_2: PositiveDims = Field(default_factory=lambda: [128, 64])
    n_heads: int = Field(2, ge=1, le=64)
    feature_selection: bool = True

    @model_validator(mode="after")
    def _heads_divide(self) -> FinalMLPModel:
        d1 = self.hidden_dims[-1] if self.hidden_dims else None
        d2 = self.hidden_dims_2[-1] if self.hidden_dims_2 else None
        for name, dim in (("hidden_dims", d1), ("hidden_dims_2", d2)):
            if dim is not None and dim % self.n_heads:
                raise ValueError(
                    f"the last of {name} ({dim}) must be divisible by n_heads ({self.n_heads})"
                )
        return self


ModelConfig = Annotated[
    LRModel | FMModel | WideDeepModel | DeepFMModel | DCNv2Model | DLRMModel | FinalMLPModel,
    Field(discriminator="family"),
]

MODEL_CLASSES: dict[str, type[_Strict]] = {
    "lr": LRModel,
    "fm": FMModel,
    "wide_deep": WideDeepModel,
    "deepfm": DeepFMModel,
    "dcn_v2": DCNv2Model,
    "dlrm": DLRMModel,
    "finalmlp": FinalMLPModel,
}


Metric = Literal["auc", "ne", "logloss"]


class TrainConfig(_Strict):
    """Optimisation, schedule, fidelity and the instability detectors.

    ``epochs`` is the horizon: the LR schedule and early stopping are defined over it.
    ``stop_at_epoch`` is a fidelity rung: the run stops after that many epochs (its checkpoint
    kept), and a later run of the same trial with a higher rung continues from there; it is
    not part of the checkpoint fingerprint, every other field is.
    """

    epochs: int = Field(3, ge=1, le=1000)
    batch_size: int = Field(1024, ge=1, le=1 << 20)
    optimizer: Literal["adam", "adamw", "sgd", "adagrad"] = "adam"
    # The embedding tables' optimizer: "same" uses ``optimizer``; row-wise Adagrad keeps one
    # accumulator per embedding row (DLRM/TorchRec's default for large tables).
    sparse_optimizer: Literal["same", "adagrad", "rowwise_adagrad", "sgd"] = "same"
    lr_dense: float = Field(2e-3, gt=0.0, allow_inf_nan=False)
    lr_sparse: float = Field(1e-2, gt=0.0, allow_inf_nan=False)
    # Learning rates are given for reference_batch_size; another batch size scales them.
    lr_batch_scaling: Literal["none", "linear", "sqrt"] = "none"
    reference_batch_size: int = Field(1024, ge=1, le=1 << 20)
    # Metric on the valid split that early stopping, the best epoch and rung pruning watch.
    monitor: Metric = "logloss"
    # Stop when the monitored metric has not improved for this many epochs (None: never);
    # the best epoch's weights are restored before the test evaluation either way.
    early_stopping_patience: int | None = Field(None, ge=1, le=1000)
    stop_at_epoch: int | None = Field(None, ge=1, le=1000)
    weight_decay: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    weight_decay_sparse: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    grad_clip_norm: float | None = Field(None, gt=0.0)
    data_fraction: float = Field(1.0, gt=0.0, le=1.0)
    eval_batch_size: int = Field(16384, ge=1)
    log_every_steps: int = Field(50, ge=1)
    # Instability detectors (None disables one). A NaN/Inf loss always stops the trial.
    loss_explosion_factor: float | None = Field(10.0, gt=1.0)
    loss_explosion_window: int = Field(50, ge=5)
    grad_norm_threshold: float | None = Field(1e4, gt=0.0)


class FeatureConfig(_Strict):
    """Feature processing applied on top of the data set's own processing (a hypothesis may
    change it like any model or train setting). Every field's default leaves the data as the
    data spec produces it.
    """

    # Numerical columns as quantile buckets (0: off): bucket edges from the train split.
    numeric_buckets: int = Field(0, ge=0, le=4096)
    # "extra": buckets are added as categorical fields and the value is kept; "replace": the
    # buckets stand instead of the value.
    numeric_bucket_mode: Literal["extra", "replace"] = "extra"
    # "standard": the data spec's transforms only; "log1p": sign-safe log1p on every numerical
    # column; "auto": log1p on the columns whose train skew exceeds skew_threshold.
    numeric_transform: Literal["standard", "log1p", "auto"] = "standard"
    skew_threshold: float = Field(2.0, gt=0.0, allow_inf_nan=False)
    # Categorical values seen fewer times in the train split map to the OOV index (None: the
    # data spec's min_frequency).
    min_frequency: int | None = Field(None, ge=1, le=1_000_000)
    # Hashed crosses of categorical field pairs, as extra categorical fields: the named pairs,
    # plus the top_k_crosses pairs with the strongest label interaction on the train split.
    crosses: list[tuple[str, str]] = Field(default_factory=list, max_length=64)
    top_k_crosses: int = Field(0, ge=0, le=64)
    cross_buckets: int = Field(100_000, ge=2, le=1 << 26)


class TrialConfig(_Strict):
    """A trial's whole config: ``model`` (discriminated by ``family``), ``train``, ``features``."""

    model: ModelConfig
    train: TrainConfig = Field(default_factory=lambda: TrainConfig.model_validate({}))
    features: FeatureConfig = Field(default_factory=lambda: FeatureConfig.model_validate({}))


# Train settings that differ per family from TrainConfig's defaults, tuned on MovieLens-100k
# (valid AUC, one seed; see docs/models.md). The class defaults are the deep models' settings.
_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "lr": {"epochs": 4, "lr_dense": 0.02, "lr_sparse": 0.02},
    "fm": {"optimizer": "adagrad", "lr_dense": 0.05, "lr_sparse": 0.05},
    "deepfm": {"lr_sparse": 0.005},
    "wide_deep": {"lr_sparse": 0.02},
    "dcn_v2": {"lr_sparse": 0.02},
    "finalmlp": {"lr_sparse": 0.02},
}
_MODEL_DEFAULTS: dict[str, dict[str, Any]] = {}


def valid_keys(family: str) -> list[str]:
    """Every dotted key a delta may set for this family, e.g. ``model.embedding_dim``."""
    if family not in MODEL_CLASSES:
        raise ConfigError(f"unknown model family '{family}'; valid families: {', '.join(FAMILIES)}")
    model = [f"model.{k}" for k in MODEL_CLASSES[family].model_fields]
    train = [f"train.{k}" for k in TrainConfig.model_fields]
    features = [f"features.{k}" for k in FeatureConfig.model_fields]
    return model + train + features


def _valid_fields(config: dict[str, Any]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {
        "": ["model", "train", "features"],
        "train": list(TrainConfig.model_fields),
        "features": list(FeatureConfig.model_fields),
        "_tags": list(FAMILIES),
    }
    model = config.get("model")
    family = model.get("family") if isinstance(model, dict) else None
    if isinstance(family, str) and family in MODEL_CLASSES:
        fields["model"] = list(MODEL_CLASSES[family].model_fields)
    return fields


def validate_config(config: dict[str, Any]) -> TrialConfig:
    """Validate a plain config; raise ConfigError with one line naming the bad field."""
    if not isinstance(config, dict):
        raise ConfigError(f"invalid config: expected a mapping, got {type(config).__name__}")
    try:
        return TrialConfig.model_validate(config)
    except ValidationError as exc:
        raise ConfigError(
            describe_pydantic_error(exc, "invalid config", _valid_fields(config))
        ) from None


def default_config(family: str) -> dict[str, Any]:
    """A good default config for the family as plain data: ``{"model": {...}, "train": {...}}``."""
    if family not in MODEL_CLASSES:
        raise ConfigError(f"unknown model family '{family}'; valid families: {', '.join(FAMILIES)}")
    model = {"family": family, **_MODEL_DEFAULTS.get(family, {})}
    train = dict(_TRAIN_DEFAULTS.get(family, {}))
    return validate_config({"model": model, "train": train}).model_dump(mode="json")


def apply_delta(config: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of config with the dotted keys of delta set, validated.

    ``{"model.embedding_dim": 32, "train.lr_dense": 0.003}``. Setting ``model.family`` replaces
    the model section with that family's defaults before the other ``model.*`` keys apply.
    An unknown key raises ConfigError listing the valid keys.
    """
    out = copy.deepcopy(config)
    out.setdefault("model", {})
    out.setdefault("train", {})
    out.setdefault("features", {})
    items = sorted(delta.items(), key=lambda kv: kv[0] != "model.family")
    for key, value in items:
        family = out["model"].get("family")
        if not isinstance(key, str) or key.count(".") != 1:
            raise ConfigError(_unknown_key_message(key, family))
        section, field = key.split(".")
        if key == "model.family":
            if value not in MODEL_CLASSES:
                raise ConfigError(
                    f"invalid delta: model.family '{value}' is not a family; "
                    f"valid families: {', '.join(FAMILIES)}"
                )
            if value != family:
                out["model"] = default_config(value)["model"]
            continue
        if family not in MODEL_CLASSES or key not in valid_keys(family):
            raise ConfigError(_unknown_key_message(key, family))
        out[section][field] = copy.deepcopy(value)
    validate_config(out)
    return out


def _unknown_key_message(key: Any, family: Any) -> str:
    if family not in MODEL_CLASSES:
        return f"invalid delta key {key!r}: the config has no valid model.family"
    return (
        f"invalid delta key {key!r} for family '{family}'; "
        f"valid keys: {', '.join(valid_keys(family))}"
    )
