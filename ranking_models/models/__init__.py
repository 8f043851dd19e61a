"""Models: ``build_model(model_config, vocab_sizes, n_numerical)`` -> a RankingModel."""

from __future__ import annotations

from typing import Any

from ranking_models.models.families import MODELS, RankingModel

__all__ = ["MODELS", "RankingModel", "build_model"]


def build_model(
    model_config: Any, vocab_sizes: list[int], n_numerical: int, prior_ctr: float | None = None
) -> RankingModel:
    """Build the model for a validated model config (``TrialConfig.model``).

    forward(x_cat [B, F] int64, x_num [B, D] float32) -> logits [B]; prior_ctr (the train
    set's positive rate) sets the fixed output offset so training starts at the base rate.
    """
    cls: Any = MODELS[model_config.family]
    model: RankingModel = cls(model_config, list(vocab_sizes), n_numerical)
    if prior_ctr is not None:
        model.set_prior(prior_ctr)
    return model
