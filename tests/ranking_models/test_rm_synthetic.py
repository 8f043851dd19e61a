"""The synthetic generator: the default data is unchanged, and planted effects."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from rm_helpers import tiny_config

from ranking_models.config import apply_delta, validate_config
from ranking_models.data.processing import load_data
from ranking_models.data.registry import DataError, validate_data_spec
from ranking_models.data.sources import synthetic


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REA_DATA_DIR", str(tmp_path / "cache"))


SPEC = {"name": "synthetic", "n_rows": 3000, "seed": 7, "n_numerical": 3}


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_default_data_is_exactly_as_before_effects_existed() -> None:
    # Digests taken before effects were added: existing tests and cached data stay valid.
    raw = synthetic(validate_data_spec(SPEC))
    cols = [raw.label, *raw.categorical.values(), *raw.numerical.values()]
    assert _digest(*cols) == "a0e0af4fbbc13f3a1735291ec98624350112982a457ee46199e55b0989d0b627"
    data = load_data(SPEC)
    arrays = [a for s in (data.train, data.valid, data.test) for a in (s.x_cat, s.x_num, s.y)]
    assert _digest(*arrays) == "3c894e03fc3b1ac5dc36a3e753f35a8c075350e5531ac1df5b3419aaad0aeeb1"


def test_effects_add_columns_and_are_deterministic() -> None:
    spec = validate_data_spec(
        {**SPEC, "effects": ["slow_interaction", "cross", "nonmonotone_numeric", "cross"]}
    )
    assert spec["effects"] == ["nonmonotone_numeric", "cross", "slow_interaction"]
    a, b = synthetic(spec), synthetic(spec)
    # nonmonotone: 2 numerical; cross: 2 categorical; slow: 1 categorical + 2 numerical
    assert list(a.categorical) == [f"c{i}" for i in range(11)]
    assert list(a.numerical) == [f"n{i}" for i in range(7)]
    assert all(len(c) == 3000 for c in [*a.categorical.values(), *a.numerical.values()])
    assert np.array_equal(a.label, b.label)
    for name in a.numerical:
        assert np.array_equal(a.numerical[name], b.numerical[name])
    assert a.categorical["c8"].max() < 32 and a.categorical["c10"].max() < 50
    assert (a.numerical["n3"] > 0).all()  # lognormal
    assert abs(a.label.mean() - 0.25) < 0.03  # the bias is solved with the effects in
    other = synthetic({**spec, "seed": 8})
    assert not np.array_equal(a.numerical["n3"], other.numerical["n3"])


def test_an_effect_leaves_the_base_columns_alone() -> None:
    plain = synthetic(validate_data_spec(SPEC))
    planted = synthetic(validate_data_spec({**SPEC, "effects": ["cross"]}))
    for name, col in plain.categorical.items():
        assert np.array_equal(col, planted.categorical[name])
    assert not np.array_equal(plain.label, planted.label)


def test_unknown_effect_is_one_line() -> None:
    with pytest.raises(DataError) as err:
        validate_data_spec({**SPEC, "effects": ["bump"]})
    assert "effects.0" in str(err.value) and "nonmonotone_numeric" in str(err.value)
    assert "\n" not in str(err.value)


def test_quantile_buckets_beat_the_raw_value_on_nonmonotone_data() -> None:
    from ranking_models.trainer import Trainer

    spec = {
        "name": "synthetic",
        "n_rows": 20000,
        "vocab_size": 30,
        "n_categorical": 4,
        "effects": ["nonmonotone_numeric"],
    }
    valid = {}
    for label, delta in (("raw", {}), ("buckets", {"features.numeric_buckets": 32})):
        config = validate_config(apply_delta(tiny_config("dcn_v2", batch_size=512), delta))
        data = load_data(spec, features=config.features)
        valid[label] = Trainer(config, data, seed=0).run().valid
    assert valid["buckets"]["auc"] > valid["raw"]["auc"] + 0.02, valid
    assert valid["buckets"]["logloss"] < valid["raw"]["logloss"] - 0.01, valid
