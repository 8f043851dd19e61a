"""Data fingerprints, and the trial's check of them before it trains."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
from rm_helpers import TINY_DATA, read_result, tiny_config, write_spec

from ranking_models.contracts import DataFingerprint
from ranking_models.data.fingerprint import check_fingerprint, fingerprint
from ranking_models.errors import DataChanged, DataError
from ranking_models.train import run_trial


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REA_DATA_DIR", str(tmp_path / "cache"))


def _criteo(path: Path, rows: int = 120, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(rows):
        ints = [str(int(x)) for x in rng.integers(0, 50, 13)]
        cats = [f"{int(x):08x}" for x in rng.integers(0, 6, 26)]
        lines.append("\t".join([str(rng.integers(0, 2)), *ints, *cats]))
    path.write_text("\n".join(lines) + "\n")


def test_fingerprint_of_a_file_and_of_generated_data(tmp_path: Path) -> None:
    path = tmp_path / "day_0.tsv"
    _criteo(path)
    fp = fingerprint({"name": "criteo", "path": str(path)})
    assert fp.size == path.stat().st_size and fp.rows == 120
    assert fp.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert fingerprint({"name": "criteo", "path": str(path), "max_rows": 50}).rows == 50
    assert fingerprint(TINY_DATA) == DataFingerprint(rows=4000)
    check_fingerprint(TINY_DATA, {"rows": 4000})
    with pytest.raises(DataChanged, match="the generated data: rows 5000 -> 4000"):
        check_fingerprint(TINY_DATA, {"rows": 5000})


def test_check_names_the_file_what_changed_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "day_0.tsv"
    _criteo(path)
    spec = {"name": "criteo", "path": str(path)}
    fp = fingerprint(spec)
    check_fingerprint(spec, fp)
    check_fingerprint(spec, fp.model_dump())
    fix = "the data changed after the plan was approved; restore it or plan a new campaign"

    _criteo(path, rows=121)
    with pytest.raises(DataChanged) as err:
        check_fingerprint(spec, fp)
    msg = str(err.value)
    assert msg.startswith(f"{path}: size {fp.size} -> ") and msg.endswith(fix)
    assert "\n" not in msg and isinstance(err.value, DataError)

    _criteo(path)
    text = path.read_text()
    path.write_text(("1" if text[0] == "0" else "0") + text[1:])  # the first label flipped
    assert path.stat().st_size == fp.size
    with pytest.raises(DataChanged, match=r"content hash \(sha256\) .* -> .*; the data changed"):
        check_fingerprint(spec, fp)

    _criteo(path)
    with pytest.raises(DataChanged, match=r"rows 99 -> 120"):
        check_fingerprint(spec, fp.model_copy(update={"rows": 99}))


def _write_csv(folder: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    rows = 1500
    table = pa.table(
        {
            "user": rng.integers(0, 30, rows),
            "price": rng.lognormal(0.0, 1.0, rows),
            "clicked": rng.integers(0, 2, rows),
        }
    )
    pcsv.write_csv(table, folder / "clicks.csv")
    (folder / "schema.toml").write_text(
        'data = "clicks.csv"\nlabel = "clicked"\ncategorical = ["user"]\nnumerical = ["price"]\n'
    )
    return {"name": "byo", "path": str(folder / "schema.toml")}


def test_trial_fails_with_data_changed_before_training(tmp_path: Path) -> None:
    data = _write_csv(tmp_path)
    fp = fingerprint(data).model_dump()
    spec_path = write_spec(tmp_path, data=data, trial_id="ok")
    spec = json.loads(spec_path.read_text())
    spec_path.write_text(json.dumps({**spec, "data_fingerprint": fp}))
    assert run_trial(spec_path) == 0
    assert read_result(spec_path)["status"] == "succeeded"

    with open(tmp_path / "clicks.csv", "a") as fh:
        fh.write("3,1.5,1\n")
    assert run_trial(spec_path) == 2
    result = read_result(spec_path, attempt=2)
    assert result["status"] == "failed" and result["failure"]["kind"] == "data_changed"
    assert "clicks.csv: size" in result["failure"]["message"]
    assert result["failure"]["exit_code"] == 2 and not result.get("valid")


def test_trial_trains_with_its_features_section(tmp_path: Path) -> None:
    config = tiny_config("dcn_v2", epochs=1)
    config["features"] = {"numeric_buckets": 8, "crosses": [["c0", "c1"]]}
    spec_path = write_spec(tmp_path, config=config)
    assert run_trial(spec_path) == 0
    result = read_result(spec_path)
    assert result["status"] == "succeeded"
    plain = write_spec(tmp_path, config=tiny_config("dcn_v2", epochs=1), trial_id="plain")
    assert run_trial(plain) == 0
    assert read_result(spec_path)["n_params"] > read_result(plain)["n_params"]  # more fields
