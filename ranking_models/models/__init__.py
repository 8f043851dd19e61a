"""Models: ``build_model(model_config, vocab_sizes, n_numerical)`` -> a RankingModel."""

from __future__ import annotations

from typing import Any

from ranking_models.models.families import MODELS, RankingModel

__all__ = ["MODELS", "RankingModel", "build_model"]


def build_model(model_config: Any, vocab_sizes: list[int], n_numerical: int) -> RankingModel:
    """Build the model for a validated model config (``TrialConfig.model``).

    forward(x_cat [B, F] int64, x_num [B, D] float32) -> logits [B].
    """
    return MODELS[model_config.family](model_config, list(vocab_sizes), n_numerical)
