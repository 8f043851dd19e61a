"""The data profile: what it finds on planted effects, its cache, its statistics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from pydantic import ValidationError
from scipy.stats import skew

from ranking_models.data.profile import DataProfile, heavy_tail, label_curve, profile_data
from ranking_models.data.stats import skewness


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REA_DATA_DIR", str(tmp_path / "cache"))


PLANTED = {
    "name": "synthetic",
    "n_rows": 40000,
    "vocab_size": 200,
    "effects": ["nonmonotone_numeric", "cross"],
}


def test_profile_finds_the_planted_effects() -> None:
    p = profile_data(PLANTED)
    assert (p.n_rows, p.n_train) == (40000, 32000)
    assert (p.n_categorical, p.n_numerical) == (10, 6)
    nums = {n.name: n for n in p.numerical}
    # n4, n5: lognormal, effect oscillating over the quantiles; n0..n3: normal, linear effect
    assert {n for n, v in nums.items() if v.nonmonotone_clear} == {"n4", "n5"}
    assert p.n_nonmonotone == 2 and p.n_skewed == 2 and p.n_heavy_tailed == 2
    assert nums["n4"].skew > 10 and nums["n4"].nonneg_share == 1.0
    assert abs(nums["n0"].skew) < 0.2 and nums["n0"].nonmonotone < 0.1
    # The top pairs are the planted ones: the effect's, and the base's adjacent fields.
    planted = {("c8", "c9"), ("c0", "c1"), ("c1", "c2"), ("c2", "c3"), ("c3", "c4")}
    assert {(q.a, q.b) for q in p.pairs} == planted
    assert p.best_pair_score == p.pairs[0].score > 0.01
    cats = {c.name: c for c in p.categorical}
    assert cats["c8"].cardinality == 32 and cats["c8"].rare_mass == 0.0
    assert cats["c8"].top_share < 0.05 and cats["c0"].top_share > 0.1  # uniform vs zipf
    assert p.max_cardinality == max(c.cardinality for c in p.categorical)
    assert p.imbalance == pytest.approx(min(p.label_rate, 1 - p.label_rate))


def test_plain_data_has_no_nonmonotone_column_and_profile_is_frozen_json() -> None:
    p = profile_data({"name": "synthetic", "n_rows": 20000})
    assert p.n_nonmonotone == 0 and p.n_skewed == 0 and p.n_heavy_tailed == 0
    # vocab 1000, zipf: the tail values are each seen fewer than 10 times
    assert 0.01 < p.max_rare_mass < 0.2 and p.max_cardinality > 500
    again = DataProfile.model_validate_json(p.model_dump_json())
    assert again == p
    json.loads(p.model_dump_json())  # plain JSON, no NaN
    with pytest.raises(ValidationError):
        p.n_rows = 3  # type: ignore[misc]


def test_profile_is_cached_next_to_the_processed_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = 3000
    table = pa.table(
        {
            "shop": rng.integers(0, 30, rows),
            "price": rng.lognormal(0.0, 1.0, rows),
            "clicked": rng.integers(0, 2, rows),
        }
    )
    pcsv.write_csv(table, tmp_path / "clicks.csv")
    schema = tmp_path / "schema.toml"
    schema.write_text(
        'data = "clicks.csv"\nlabel = "clicked"\ncategorical = ["shop"]\nnumerical = ["price"]\n'
    )
    spec = {"name": "byo", "path": str(schema)}
    first = profile_data(spec)
    (path,) = (tmp_path / "cache" / "processed").glob("byo-*.profile.json")
    assert path.with_name(path.name.removesuffix(".profile.json")).is_dir()
    assert DataProfile.model_validate_json(path.read_text()) == first
    # the cached file is what is read back ...
    path.write_text(first.model_copy(update={"n_train": 1}).model_dump_json())
    assert profile_data(spec).n_train == 1
    # ... and an unreadable one is rebuilt
    path.write_text("{")
    assert profile_data(spec) == first
    assert first.n_numerical == 1 and first.numerical[0].heavy_tail > 4.0  # lognormal(0, 1)


def test_skewness_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    x = rng.lognormal(0.0, 0.7, 5000)
    assert skewness(x) == pytest.approx(skew(x), rel=1e-9)
    assert skewness(np.append(x, np.nan)) == pytest.approx(skew(x), rel=1e-9)
    assert skewness(np.ones(10)) == 0.0 and skewness(np.array([1.0])) == 0.0


def test_heavy_tail_reference_values() -> None:
    rng = np.random.default_rng(2)
    assert heavy_tail(rng.normal(size=200_000)) == pytest.approx(1.72, abs=0.05)
    assert heavy_tail(-rng.lognormal(0.0, 1.0, 200_000)) == pytest.approx(6.4, abs=0.3)
    assert heavy_tail(np.zeros(10)) == 0.0


def test_label_curve_monotone_vs_bump() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=100_000)
    up = (rng.random(x.size) < 1 / (1 + np.exp(-x))).astype(float)
    bump = (rng.random(x.size) < 1 / (1 + np.exp(-2 * np.cos(2 * x)))).astype(float)
    noise = (rng.random(x.size) < 0.3).astype(float)
    signal, nonmono, clear = label_curve(x, up)
    assert signal > 0.3 and nonmono < 0.01 and not clear
    signal, nonmono, clear = label_curve(x, bump)
    assert signal > 0.3 and nonmono > 0.5 and clear
    assert not label_curve(x, noise)[2]


def test_profile_module_imports_no_torch() -> None:
    code = "import ranking_models.data.profile, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
