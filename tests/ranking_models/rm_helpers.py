"""Helpers for the ranking_models tests (imported as a top-level module: tests/ has no packages)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ranking_models.config import default_config

TINY_DATA = {
    "name": "synthetic",
    "n_rows": 4000,
    "n_categorical": 4,
    "n_numerical": 2,
    "vocab_size": 50,
}


def tiny_config(family: str = "dcn_v2", **train: Any) -> dict[str, Any]:
    config = default_config(family)
    if "hidden_dims" in config["model"]:
        config["model"]["hidden_dims"] = [32, 16]
    if "hidden_dims_2" in config["model"]:
        config["model"]["hidden_dims_2"] = [32, 16]
    config["model"]["embedding_dim"] = 8 if family != "lr" else None
    if family == "lr":
        del config["model"]["embedding_dim"]
    config["train"].update({"epochs": 2, "batch_size": 256, **train})
    return config


def write_spec(
    folder: Path,
    config: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    seed: int = 0,
    trial_id: str = "t-s0",
    **extra: Any,
) -> Path:
    """A spec.json under folder/trial_id; extra sets further spec fields (e.g. prune)."""
    trial = folder / trial_id
    trial.mkdir(parents=True, exist_ok=True)
    spec = {
        "schema": 1,
        "campaign_id": "c-test",
        "trial_id": trial_id,
        "hypothesis_id": "baseline",
        "phase": "validation",
        "seed": seed,
        "config": config if config is not None else tiny_config(),
        "data": data if data is not None else dict(TINY_DATA),
        "checkpoint_dir": str(trial / "checkpoint"),
        "attempts_dir": str(trial / "attempts"),
        **extra,
    }
    path = trial / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def set_train(spec_path: Path, **train: Any) -> None:
    """Change train settings of an existing spec (a later attempt of the same trial)."""
    spec = json.loads(spec_path.read_text())
    spec["config"]["train"].update(train)
    spec_path.write_text(json.dumps(spec))


def read_result(spec_path: Path, attempt: int = 1) -> dict[str, Any]:
    return json.loads((spec_path.parent / "attempts" / str(attempt) / "result.json").read_text())


def read_metrics(spec_path: Path, attempt: int = 1) -> list[dict[str, Any]]:
    lines = (
        (spec_path.parent / "attempts" / str(attempt) / "metrics.jsonl").read_text().splitlines()
    )
    return [json.loads(line) for line in lines]


def movielens_or_skip() -> None:
    from ranking_models.data.fetch import movielens_available, movielens_dir

    if not movielens_available():
        pytest.skip(
            f"MovieLens-100k is not cached in {movielens_dir()}; "
            "run `python -m ranking_models.data.fetch movielens-100k` (make data)"
        )


def movielens_1m_or_skip() -> None:
    from ranking_models.data.movielens_1m import movielens_1m_available, movielens_1m_dir

    if not movielens_1m_available():
        pytest.skip(
            f"MovieLens-1M is not cached in {movielens_1m_dir()}; "
            "run `python -m ranking_models.data.fetch movielens-1m` (make data)"
        )
