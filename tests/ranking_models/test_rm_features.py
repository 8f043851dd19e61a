"""The features section in load_data, and the processed-data cache."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from rm_helpers import TINY_DATA, tiny_config

from ranking_models.config import FAMILIES, ConfigError, FeatureConfig, validate_config
from ranking_models.data.digests import file_sha256
from ranking_models.data.features import bucket_edges, bucketize, frequency_mapping
from ranking_models.data.interactions import score_pairs
from ranking_models.data.processing import load_base, load_data, transform_numerical
from ranking_models.data.registry import DataError, validate_data_spec


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REA_DATA_DIR", str(tmp_path / "cache"))


def _byo(tmp_path: Path, rows: int = 2000) -> dict[str, str]:
    """A CSV with a skewed column with missing values, and its schema (file-based: cached)."""
    rng = np.random.default_rng(0)
    price = rng.lognormal(0.0, 2.0, rows)
    price[rng.random(rows) < 0.1] = np.nan
    table = pa.table(
        {
            "user": [f"u{i}" for i in rng.integers(0, 40, rows)],
            "item": rng.integers(0, 25, rows),
            "price": price,
            "age": rng.normal(40.0, 10.0, rows),
            "clicked": rng.integers(0, 2, rows),
        }
    )
    pcsv.write_csv(table, tmp_path / "clicks.csv")
    (tmp_path / "schema.toml").write_text(
        'data = "clicks.csv"\nlabel = "clicked"\ncategorical = ["user", "item"]\n'
        'numerical = ["price", "age"]\nlog1p = ["age"]\n'
    )
    return {"name": "byo", "path": str(tmp_path / "schema.toml")}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


# ---------------------------------------------------------------- defaults


@pytest.mark.parametrize("features", [None, {}, FeatureConfig()])
def test_default_features_give_the_data_specs_arrays(features: object) -> None:
    plain = load_data(TINY_DATA)
    data = load_data(TINY_DATA, features=features)  # type: ignore[arg-type]
    assert data.cat_names == plain.cat_names and data.vocab_sizes == plain.vocab_sizes
    for s in ("train", "valid", "test"):
        a, b = data.split(s), plain.split(s)
        assert _same(a.x_cat, b.x_cat) and _same(a.x_num, b.x_num) and _same(a.y, b.y)


def test_bad_features_section_is_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        load_data(TINY_DATA, features={"numeric_bucket": 8})
    assert "unknown field 'numeric_bucket'" in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- numerical


def test_bucket_edges_and_codes() -> None:
    train = np.array([1.0, 2.0, 3.0, 4.0, np.nan, 5.0, 6.0, 7.0, 8.0])
    edges = bucket_edges(train, 4)
    assert np.allclose(edges, np.quantile(train[np.isfinite(train)], [0.25, 0.5, 0.75]))
    codes = bucketize(np.array([np.nan, -1.0, 2.5, 100.0]), edges)
    assert codes.tolist() == [1, 2, 2, 5]  # missing -> 1; below, inside, above the range
    assert len(bucket_edges(np.ones(50), 8)) == 1  # repeated values: fewer buckets


def test_buckets_extra_and_replace(tmp_path: Path) -> None:
    spec = _byo(tmp_path)
    base = load_base(validate_data_spec(spec))
    data = load_data(spec, features={"numeric_buckets": 8})
    assert data.cat_names == ["user", "item", "bucket:price", "bucket:age"]
    assert data.num_names == ["price", "age"] and data.train.x_num.shape[1] == 2
    raw = base.train.raw_num[:, 0]
    codes = data.train.x_cat[:, 2]
    assert np.all(codes[~np.isfinite(raw)] == 1) and np.all(codes[np.isfinite(raw)] >= 2)
    shares = np.bincount(codes[codes >= 2])[2:] / (codes >= 2).sum()
    assert len(shares) == 8 and shares.min() > 0.1  # train quantiles: equal shares
    assert data.vocab_sizes[2] == 8 + 2
    assert data.test.x_cat[:, 2].max() < data.vocab_sizes[2]
    replaced = load_data(spec, features={"numeric_buckets": 8, "numeric_bucket_mode": "replace"})
    assert replaced.num_names == [] and replaced.train.x_num.shape == (len(replaced.train), 0)
    assert np.array_equal(replaced.train.x_cat, data.train.x_cat)


def test_numeric_transforms(tmp_path: Path) -> None:
    spec = _byo(tmp_path)
    base = load_base(validate_data_spec(spec))
    standard = load_data(spec)
    log1p = load_data(spec, features={"numeric_transform": "log1p"})
    auto = load_data(spec, features={"numeric_transform": "auto"})
    train_idx = np.arange(len(base.train))
    for j in range(2):
        want = transform_numerical(base.train.raw_num[:, j], train_idx, log1p=True)
        assert np.allclose(log1p.train.x_num[:, j], want.astype(np.float32))
    # auto: price is heavily skewed (log1p), age comes from the spec's log1p list
    assert np.allclose(auto.train.x_num, log1p.train.x_num)
    assert not np.allclose(standard.train.x_num[:, 0], log1p.train.x_num[:, 0])
    assert np.allclose(standard.train.x_num[:, 1], log1p.train.x_num[:, 1])
    high = load_data(spec, features={"numeric_transform": "auto", "skew_threshold": 1e6})
    assert np.allclose(high.train.x_num, standard.train.x_num)


# ---------------------------------------------------------------- categorical


def test_min_frequency_equals_processing_from_the_raw_values() -> None:
    spec = {**TINY_DATA, "n_rows": 6000, "vocab_size": 300}
    scratch = load_data({**spec, "min_frequency": 5})
    data = load_data(spec, features={"min_frequency": 5})
    assert data.vocab_sizes == scratch.vocab_sizes
    assert data.vocab_sizes[0] < load_data(spec).vocab_sizes[0]
    for s in ("train", "valid", "test"):
        assert np.array_equal(data.split(s).x_cat, scratch.split(s).x_cat)


def test_frequency_mapping_keeps_oov_and_order() -> None:
    mapping, size = frequency_mapping(np.array([0, 1, 1, 2, 3, 3, 3, 0, 0]), 5, 2)
    assert size == 3 and mapping.tolist() == [0, 1, 0, 2, 0]


# ---------------------------------------------------------------- crosses


def test_explicit_cross_vocabulary_and_cap() -> None:
    base = load_data(TINY_DATA)
    data = load_data(TINY_DATA, features={"crosses": [["c0", "c1"], ["c1", "c0"]]})
    assert data.cat_names == [*base.cat_names, "cross:c0xc1"]  # a pair named twice: once
    keys = {
        s: data.split(s).x_cat[:, 0] * 10**6 + data.split(s).x_cat[:, 1] for s in ("train", "valid")
    }
    cross = {s: data.split(s).x_cat[:, -1] for s in ("train", "valid")}
    assert data.vocab_sizes[-1] == len(np.unique(keys["train"])) + 1
    assert (cross["train"] > 0).all()
    # one code per combination, the same in every split; unseen combinations -> OOV 0
    seen = dict(zip(keys["train"].tolist(), cross["train"].tolist(), strict=True))
    for k, c in zip(keys["valid"].tolist(), cross["valid"].tolist(), strict=True):
        assert c == seen.get(k, 0)
    capped = load_data(TINY_DATA, features={"crosses": [["c0", "c1"]], "cross_buckets": 11})
    codes = capped.train.x_cat[:, -1]
    assert capped.vocab_sizes[-1] == 11 and codes.max() == 10
    # the 10 kept combinations are the most frequent ones
    counts = np.unique(keys["train"], return_counts=True)[1]
    assert (codes > 0).sum() == np.sort(counts)[::-1][:10].sum()


def test_cross_of_a_numerical_column_uses_its_buckets() -> None:
    with pytest.raises(DataError) as err:
        load_data(TINY_DATA, features={"crosses": [["c0", "n1"]]})
    assert "'n1' is a numerical column" in str(err.value)
    assert "features.numeric_buckets > 0" in str(err.value) and "\n" not in str(err.value)
    data = load_data(TINY_DATA, features={"crosses": [["c0", "n1"]], "numeric_buckets": 4})
    assert data.cat_names[-1] == "cross:c0xbucket:n1"


def test_unknown_cross_field_lists_the_valid_names() -> None:
    with pytest.raises(DataError) as err:
        load_data(TINY_DATA, features={"crosses": [["c0", "user"]]})
    msg = str(err.value)
    assert "unknown field 'user'" in msg and "c0, c1, c2, c3" in msg and "n0, n1" in msg
    assert "\n" not in msg
    with pytest.raises(DataError, match="with itself"):
        load_data(TINY_DATA, features={"crosses": [["c2", "c2"]]})


def test_top_k_crosses_finds_the_planted_pair() -> None:
    spec = {"name": "synthetic", "n_rows": 20000, "effects": ["cross"]}
    data = load_data(spec, features={"top_k_crosses": 1})
    assert data.cat_names[-1] == "cross:c8xc9"
    again = load_data(spec, features={"top_k_crosses": 1})
    assert np.array_equal(data.train.x_cat, again.train.x_cat)
    named = load_data(spec, features={"top_k_crosses": 1, "crosses": [["c9", "c8"]]})
    assert named.cat_names[-1] != "cross:c8xc9" and "cross:c9xc8" in named.cat_names


def test_pair_score_ignores_memorisable_and_redundant_pairs() -> None:
    rng = np.random.default_rng(0)
    n = 60000
    a, b = rng.integers(0, 20, n), rng.integers(0, 20, n)
    ident = rng.permutation(n)  # unique per row: memorisable only
    table = rng.normal(0.0, 1.0, (20, 20))
    logit = table[a, b] + 0.5 * (a % 3)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    fields = {"a": a, "b": b, "ident": ident, "a_copy": a * 7 + 1}
    scores = {(s.a, s.b): s.score for s in score_pairs(fields, y)}
    assert scores[("a", "b")] > 0.05
    assert abs(scores[("a", "ident")]) < 0.005 and abs(scores[("a", "a_copy")]) < 0.005


# ---------------------------------------------------------------- models with no numerics


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_trains_with_buckets_instead_of_values(family: str) -> None:
    from ranking_models.trainer import Trainer

    raw = tiny_config(family, epochs=1)
    raw["features"] = {"numeric_buckets": 8, "numeric_bucket_mode": "replace"}
    config = validate_config(raw)
    data = load_data(TINY_DATA, features=config.features)
    assert data.train.x_num.shape[1] == 0
    outcome = Trainer(config, data, seed=0).run()
    assert np.isfinite(outcome.valid["logloss"]) and outcome.valid["auc"] > 0.5


# ---------------------------------------------------------------- cache


def test_cache_is_memory_mapped_and_torch_takes_it_without_a_warning(tmp_path: Path) -> None:
    import torch

    spec = _byo(tmp_path)
    first = load_data(spec, features={"numeric_buckets": 4})
    entries = sorted(p.name for p in (tmp_path / "cache" / "processed").iterdir())
    assert len(entries) == 2 and entries[1].startswith(entries[0] + "-f")
    base_dir = tmp_path / "cache" / "processed" / entries[0]
    assert (base_dir / "meta.json").is_file() and (base_dir / "train_raw_num.npy").is_file()
    data = load_data(spec, features={"numeric_buckets": 4})
    assert isinstance(data.train.x_cat, np.memmap) and isinstance(data.train.y, np.memmap)
    assert np.array_equal(data.train.x_cat, first.train.x_cat)
    assert data.fingerprint == first.fingerprint != load_data(spec).fingerprint
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = torch.from_numpy(data.train.x_cat)
    t[0, 0] = 123  # copy-on-write: the file is not changed
    assert load_data(spec, features={"numeric_buckets": 4}).train.x_cat[0, 0] != 123


def test_corrupt_cache_entries_are_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _byo(tmp_path)
    want = load_data(spec, features={"top_k_crosses": 1})
    processed = tmp_path / "cache" / "processed"
    base_dir, derived_dir = sorted(processed.iterdir())
    npy = base_dir / "train_x_cat.npy"
    npy.write_bytes(npy.read_bytes()[:100])
    (derived_dir / "meta.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        data = load_data(spec, features={"top_k_crosses": 1})
    assert "rebuilding" in caplog.text
    assert np.array_equal(data.train.x_cat, want.train.x_cat)
    assert data.cat_names == want.cat_names
    assert sorted(p.name for p in processed.iterdir()) == [base_dir.name, derived_dir.name]
    assert np.array_equal(load_data(spec).train.x_cat, load_data(spec).train.x_cat)


def test_digest_cache_skips_unchanged_files(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    real = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == real
    (entry,) = (tmp_path / "cache" / "digests").iterdir()
    # A planted digest is returned as long as the stat is unchanged: the file is not re-read.
    planted = json.loads(entry.read_text()) | {"sha256": "0" * 64}
    entry.write_text(json.dumps(planted))
    assert file_sha256(path) == "0" * 64
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched: hashed again
    assert file_sha256(path) == real
    (fresh,) = set((tmp_path / "cache" / "digests").iterdir()) - {entry}
    fresh.write_text("torn")
    assert file_sha256(path) == real
