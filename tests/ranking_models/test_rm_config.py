import re
import subprocess
import sys
from pathlib import Path

import pytest

from ranking_models.config import (
    FAMILIES,
    ConfigError,
    TrialConfig,
    apply_delta,
    default_config,
    valid_keys,
    validate_config,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("family", FAMILIES)
def test_default_config_is_valid_plain_data(family: str) -> None:
    config = default_config(family)
    assert set(config) == {"model", "train", "features"}
    assert config["model"]["family"] == family
    parsed = validate_config(config)
    assert isinstance(parsed, TrialConfig)
    assert parsed.model_dump(mode="json") == config  # round trip, nothing lost


@pytest.mark.parametrize("family", FAMILIES)
def test_unknown_model_field_lists_valid_ones(family: str) -> None:
    config = default_config(family)
    config["model"]["bogus"] = 1
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    msg = str(err.value)
    assert "\n" not in msg
    assert "model.bogus" in msg and "valid fields: " in msg and "family" in msg


def test_unknown_train_field_and_top_level_field() -> None:
    config = default_config("fm")
    config["train"]["lr"] = 0.1
    with pytest.raises(ConfigError, match=r"unknown field 'train.lr'; valid fields: epochs, "):
        validate_config(config)
    with pytest.raises(ConfigError, match="unknown field 'extra'; valid fields: model, train"):
        validate_config({**default_config("fm"), "extra": 1})


@pytest.mark.parametrize(
    ("section", "field", "value", "expected"),
    [
        ("model", "norm", "group", "model.norm: Input should be 'none', 'batch' or 'layer'"),
        (
            "model",
            "activation",
            "tanh",
            "model.activation: Input should be 'relu', 'gelu' or 'silu'",
        ),
        ("model", "dropout", 1.5, "model.dropout: Input should be less than 1"),
        ("model", "structure", "mixed", "model.structure: Input should be 'stacked' or 'parallel'"),
        (
            "model",
            "hidden_dims",
            [64, 0],
            "model.hidden_dims.1: Input should be greater than or equal to 1",
        ),
        (
            "train",
            "optimizer",
            "lamb",
            "train.optimizer: Input should be 'adam', 'adamw', 'sgd' or 'adagrad'",
        ),
        ("train", "lr_dense", 0, "train.lr_dense: Input should be greater than 0"),
        (
            "train",
            "data_fraction",
            1.5,
            "train.data_fraction: Input should be less than or equal to 1",
        ),
        (
            "train",
            "lr_schedule",
            "step",
            "train.lr_schedule: Input should be 'constant', 'cosine' or 'linear'",
        ),
    ],
)
def test_bad_values_name_the_field_and_allowed_values(section, field, value, expected) -> None:
    config = default_config("dcn_v2")
    config[section][field] = value
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_family_errors() -> None:
    with pytest.raises(ConfigError, match=r"model.family is 'xgboost'; allowed values: 'lr', 'fm'"):
        validate_config({"model": {"family": "xgboost"}})
    with pytest.raises(ConfigError, match=r"model.family is missing; allowed values: 'lr'"):
        validate_config({"model": {"embedding_dim": 8}})
    with pytest.raises(ConfigError, match="expected a mapping"):
        validate_config([])  # type: ignore[arg-type]


def test_finalmlp_heads_must_divide_the_last_layer() -> None:
    config = apply_delta(default_config("finalmlp"), {"model.n_heads": 4})
    assert validate_config(config).model.n_heads == 4  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="divisible by n_heads"):
        apply_delta(default_config("finalmlp"), {"model.n_heads": 3})


def test_config_is_frozen() -> None:
    parsed = validate_config(default_config("lr"))
    with pytest.raises(Exception, match="frozen"):
        parsed.train.epochs = 5  # type: ignore[misc]


def test_apply_delta_sets_dotted_keys_without_touching_the_input() -> None:
    base = default_config("dcn_v2")
    out = apply_delta(
        base, {"model.embedding_dim": 32, "train.lr_dense": 0.003, "train.data_fraction": 0.5}
    )
    assert out["model"]["embedding_dim"] == 32
    assert out["train"]["lr_dense"] == 0.003 and out["train"]["data_fraction"] == 0.5
    assert base["model"]["embedding_dim"] == default_config("dcn_v2")["model"]["embedding_dim"]


def test_apply_delta_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as err:
        apply_delta(default_config("dcn_v2"), {"model.embeding_dim": 32})
    msg = str(err.value)
    assert (
        "'model.embeding_dim'" in msg and "model.embedding_dim" in msg and "train.lr_dense" in msg
    )
    with pytest.raises(ConfigError, match="valid keys"):
        apply_delta(default_config("lr"), {"model.embedding_dim": 8})  # LR has no embeddings
    with pytest.raises(ConfigError, match="valid keys"):
        apply_delta(default_config("lr"), {"epochs": 8})


def test_apply_delta_validates_values_and_can_switch_family() -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        apply_delta(default_config("fm"), {"train.epochs": 0})
    out = apply_delta(default_config("lr"), {"model.family": "dcn_v2", "model.cross_layers": 2})
    assert out["model"]["family"] == "dcn_v2" and out["model"]["cross_layers"] == 2
    with pytest.raises(ConfigError, match="valid families"):
        apply_delta(default_config("lr"), {"model.family": "gbdt"})


def test_valid_keys() -> None:
    keys = valid_keys("dlrm")
    assert "model.bottom_dims" in keys and "train.grad_clip_norm" in keys
    assert "model.cross_layers" not in keys


def test_light_modules_import_no_torch_and_no_rea_cli() -> None:
    code = (
        "import sys, ranking_models, ranking_models.config, ranking_models.data.registry, "
        "ranking_models.errors, ranking_models.metrics, ranking_models.train\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('rea_cli')]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_ranking_models_never_imports_rea_cli() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+rea_cli", re.MULTILINE)
    offenders = [
        str(p) for p in (ROOT / "ranking_models").rglob("*.py") if pattern.search(p.read_text())
    ]
    assert offenders == []
