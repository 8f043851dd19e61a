"""Raw data sources: each returns a RawTable (numpy columns + a 0/1 label). No torch.

Processing (split, vocabularies, numeric transforms) is the same for all sources and lives in
``ranking_models.data.processing``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ranking_models.data.digests import files_sha256
from ranking_models.data.registry import FETCH_COMMAND, load_byo_schema
from ranking_models.errors import DataError, join_names


@dataclass
class RawTable:
    """Columns before processing. categorical: any comparable dtype; numerical: float64."""

    label: np.ndarray
    categorical: dict[str, np.ndarray]
    numerical: dict[str, np.ndarray]
    log1p: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.label)


# ---------------------------------------------------------------- synthetic


def synthetic(spec: dict[str, Any]) -> RawTable:
    """A CTR table with planted pairwise interactions and a calibrated positive rate.

    logit = field biases + a dense linear term + dot products of hidden vectors for pairs of
    adjacent fields + a numerical x categorical interaction; the global bias is solved so the
    expected positive rate is ``positive_rate``.
    """
    rng = np.random.default_rng(spec["seed"])
    n, n_cat, n_num, vocab = (
        spec["n_rows"],
        spec["n_categorical"],
        spec["n_numerical"],
        spec["vocab_size"],
    )
    zipf = 1.0 / np.arange(1, vocab + 1) ** 1.1
    zipf /= zipf.sum()
    cats = [rng.choice(vocab, size=n, p=zipf) for _ in range(n_cat)]
    nums = rng.standard_normal((n, n_num))
    logit = np.zeros(n)
    for col in cats:
        logit += rng.normal(0.0, 0.5, vocab)[col]
    if n_num:
        logit += nums @ rng.normal(0.0, 0.5, n_num)
    k = 4
    for f in range(min(n_cat - 1, 4)):
        u = rng.normal(0.0, 1.0 / np.sqrt(k), (vocab, k))
        v = rng.normal(0.0, 1.0, (vocab, k))
        logit += (u[cats[f]] * v[cats[f + 1]]).sum(1)
    if n_num:
        logit += nums[:, 0] * rng.normal(0.0, 0.7, vocab)[cats[0]]
    categorical = {f"c{i}": c.astype(np.int64) for i, c in enumerate(cats)}
    numerical = {f"n{i}": nums[:, i].copy() for i in range(n_num)}
    for effect in spec.get("effects", []):
        # Each effect draws from its own stream: the base data and the label draw stay the same.
        effect_rng = np.random.default_rng([spec["seed"], _EFFECT_STREAMS[effect]])
        logit += _EFFECTS[effect](effect_rng, n, categorical, numerical)
    bias = _solve_bias(logit, spec["positive_rate"])
    prob = 1.0 / (1.0 + np.exp(-(logit + bias)))
    label = (rng.random(n) < prob).astype(np.float32)
    return RawTable(label=label, categorical=categorical, numerical=numerical)


def _add(columns: dict[str, np.ndarray], prefix: str, values: np.ndarray) -> str:
    name = f"{prefix}{len(columns)}"
    columns[name] = values
    return name


def _nonmonotone_numeric(
    rng: np.random.Generator, n: int, cat: dict[str, np.ndarray], num: dict[str, np.ndarray]
) -> np.ndarray:
    """Two lognormal columns whose logit effect oscillates over their quantiles.

    Standardised, the bulk of a lognormal sits in a sliver next to its long tail, and the
    effect goes up and down there: a monotone or smooth function of the value cannot follow
    it, quantile buckets can.
    """
    from scipy.special import ndtr

    logit = np.zeros(n)
    for _ in range(2):
        z = rng.standard_normal(n)
        _add(num, "n", np.exp(NONMONOTONE_SIGMA * z))
        phase = rng.uniform(0.0, 2.0 * np.pi)
        logit += NONMONOTONE_AMPLITUDE * np.sin(NONMONOTONE_WAVES * np.pi * ndtr(z) + phase)
    return logit


def _cross(
    rng: np.random.Generator, n: int, cat: dict[str, np.ndarray], num: dict[str, np.ndarray]
) -> np.ndarray:
    """Two mid-cardinality fields with a random full-rank joint effect and no main effects."""
    k = CROSS_VALUES
    a, b = rng.integers(0, k, n), rng.integers(0, k, n)
    table = rng.normal(0.0, CROSS_SCALE, (k, k))
    table -= table.mean(axis=0, keepdims=True)  # double centring: the pair alone carries it
    table -= table.mean(axis=1, keepdims=True)
    _add(cat, "c", a.astype(np.int64))
    _add(cat, "c", b.astype(np.int64))
    return table[a, b]


def _slow_interaction(
    rng: np.random.Generator, n: int, cat: dict[str, np.ndarray], num: dict[str, np.ndarray]
) -> np.ndarray:
    """A three-way interaction: each value of a fresh field sets the sign and size of the
    product of two fresh numerical columns.

    Nothing of it shows in any one or two of the columns, and a model only finds it through a
    product of three small learned factors, which grows slowly from their small initial
    values: the default epochs leave most of it unlearnt, more epochs learn it.
    """
    codes = rng.integers(0, SLOW_VALUES, n)
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    slope = rng.normal(0.0, SLOW_SCALE, SLOW_VALUES)
    _add(cat, "c", codes.astype(np.int64))
    _add(num, "n", x1)
    _add(num, "n", x2)
    return slope[codes] * x1 * x2


# Strengths of the planted effects (checked with the trainer: docs/models.md).
NONMONOTONE_SIGMA = 2.5
NONMONOTONE_AMPLITUDE = 1.0
NONMONOTONE_WAVES = 3.0
CROSS_VALUES = 32
CROSS_SCALE = 1.0
SLOW_VALUES = 50
SLOW_SCALE = 1.5

_EffectFn = Callable[
    [np.random.Generator, int, dict[str, np.ndarray], dict[str, np.ndarray]], np.ndarray
]
_EFFECTS: dict[str, _EffectFn] = {
    "nonmonotone_numeric": _nonmonotone_numeric,
    "cross": _cross,
    "slow_interaction": _slow_interaction,
}
_EFFECT_STREAMS = {"nonmonotone_numeric": 101, "cross": 102, "slow_interaction": 103}


def _solve_bias(logit: np.ndarray, rate: float) -> float:
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (1.0 / (1.0 + np.exp(-(logit + mid)))).mean() < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# ---------------------------------------------------------------- movielens-100k


def movielens_files() -> list[Path]:
    from ranking_models.data.fetch import MOVIELENS_FILES, movielens_available, movielens_dir

    if not movielens_available():
        raise DataError(
            f"MovieLens-100k is not in the dataset cache ({movielens_dir()}); "
            f"run `{FETCH_COMMAND}` (or `make data`) first"
        )
    return [movielens_dir() / f for f in MOVIELENS_FILES]


def _read_atomic_file(path: Path) -> dict[str, np.ndarray]:
    """Read a recbole atomic file (tab-separated, 'name:type' header) as string columns."""
    lines = path.read_text(encoding="latin-1").splitlines()
    names = [h.split(":")[0] for h in lines[0].split("\t")]
    rows = [line.split("\t") for line in lines[1:] if line]
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return {name: np.array(col, dtype=str) for name, col in zip(names, cols, strict=True)}


def movielens_100k(spec: dict[str, Any]) -> RawTable:
    """100,000 ratings joined with user and item features; label = rating >= 4."""
    inter_path, user_path, item_path = movielens_files()
    inter = _read_atomic_file(inter_path)
    users = _read_atomic_file(user_path)
    items = _read_atomic_file(item_path)
    u_index = {uid: i for i, uid in enumerate(users["user_id"])}
    i_index = {iid: i for i, iid in enumerate(items["item_id"])}
    ui = np.array([u_index[u] for u in inter["user_id"]])
    ii = np.array([i_index[i] for i in inter["item_id"]])
    genres = items["class"][ii]
    year = items["release_year"][ii]
    age = users["age"][ui]
    year_num = np.array([float(y) if y.isdigit() else np.nan for y in year])  # some 'unkonwn'
    stamp = inter["timestamp"].astype(np.float64)
    categorical = {
        "user_id": inter["user_id"],
        "item_id": inter["item_id"],
        "age": age,
        "gender": users["gender"][ui],
        "occupation": users["occupation"][ui],
        "zip3": np.array([z[:3] for z in users["zip_code"][ui]]),
        "release_year": year,
        "genre": np.array([g.split(" ")[0] if g else "" for g in genres]),
        "genres": genres,
        "weekday": ((stamp // 86400 + 3) % 7).astype(np.int64).astype(str),
    }
    numerical = {
        "age": age.astype(np.float64),
        "release_year": year_num,
        "timestamp": stamp,
    }
    label = (inter["rating"].astype(np.float64) >= 4).astype(np.float32)
    return RawTable(label=label, categorical=categorical, numerical=numerical)


# ---------------------------------------------------------------- bring your own


def byo(spec: dict[str, Any]) -> RawTable:
    """A CSV or Parquet file described by a TOML/YAML schema file (see docs/models.md)."""
    schema, data_path = load_byo_schema(spec["path"])
    fmt = schema.format or ("parquet" if data_path.suffix in (".parquet", ".pq") else "csv")
    wanted = [schema.label, *schema.categorical, *schema.numerical]
    table = _read_table(data_path, fmt, schema.delimiter)
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise DataError(
            f"{data_path}: missing column(s) {join_names(missing)} named in the schema; "
            f"the file has: {join_names(table.column_names)}{_delimiter_hint(table, fmt)}"
        )
    if table.num_rows == 0:
        raise DataError(f"{data_path}: the file has no rows")
    label = _numeric_column(table, schema.label, data_path)
    if np.isnan(label).any():
        raise DataError(f"{data_path}: label column '{schema.label}' has missing values")
    if schema.label_threshold is not None:
        label = (label >= schema.label_threshold).astype(np.float64)
    _check_binary(label, schema.label, data_path, hint="; set label_threshold in the schema")
    numerical = {c: _numeric_column(table, c, data_path) for c in schema.numerical}
    for name, values in numerical.items():
        if not np.isfinite(values).any():
            raise DataError(
                f"{data_path}: numerical column '{name}' has no value (all missing or not "
                "finite); fill it, or remove it from `numerical` in the schema"
            )
    return RawTable(
        label=label.astype(np.float32),
        categorical={c: _string_column(table, c) for c in schema.categorical},
        numerical=numerical,
        log1p=list(schema.log1p),
    )


def _delimiter_hint(table: Any, fmt: str) -> str:
    """A CSV read with the wrong delimiter has one column whose name holds the others."""
    if fmt != "csv" or table.num_columns != 1:
        return ""
    header = table.column_names[0]
    found = next((d for d in (";", "\t", "|", ",") if d in header), None)
    return f" (one column: set delimiter = {found!r} in the schema)" if found else ""


def _read_table(path: Path, fmt: str, delimiter: str) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    try:
        if fmt == "parquet":
            return pq.read_table(path)
        return pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter=delimiter))
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        first = str(exc).splitlines()[0]
        raise DataError(f"cannot read {path} as {fmt}: {first}") from None


def _string_column(table: Any, name: str) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    col = pc.cast(table.column(name), pa.string())
    return np.array(col.fill_null("<null>").to_pylist(), dtype=str)


def _numeric_column(table: Any, name: str, path: Path) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        col = pc.cast(table.column(name), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(f"{path}: column '{name}' is not numeric") from None
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def _check_binary(label: np.ndarray, name: str, path: Path, hint: str = "") -> None:
    values = np.unique(label)
    if not np.isin(values, (0.0, 1.0)).all():
        shown = join_names(f"{v:g}" for v in values[:5])
        raise DataError(f"{path}: label column '{name}' must be 0/1, found values {shown}{hint}")


# ---------------------------------------------------------------- criteo


CRITEO_INT = [f"I{i}" for i in range(1, 14)]
CRITEO_CAT = [f"C{i}" for i in range(1, 27)]


def criteo(spec: dict[str, Any]) -> RawTable:
    """The Criteo TSV layout: label, 13 integer and 26 categorical columns, no header."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    path = Path(spec["path"])
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    names = ["label", *CRITEO_INT, *CRITEO_CAT]
    types: dict[str, Any] = {"label": pa.float64()}
    types |= {c: pa.float64() for c in CRITEO_INT} | {c: pa.string() for c in CRITEO_CAT}
    try:
        table = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(column_names=names),
            parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).splitlines()[0]
        raise DataError(
            f"cannot read {path} as Criteo TSV (label, I1..I13, C1..C26, tab-separated): {first}"
        ) from None
    if spec.get("max_rows"):
        table = table.slice(0, spec["max_rows"])
    label = _numeric_column(table, "label", path)
    if np.isnan(label).any():
        raise DataError(f"{path}: the label column has missing values")
    _check_binary(label, "label", path)
    return RawTable(
        label=label.astype(np.float32),
        categorical={c: _string_column(table, c) for c in CRITEO_CAT},
        numerical={c: _numeric_column(table, c, path) for c in CRITEO_INT},
        log1p=list(CRITEO_INT),
    )


def source_files(spec: dict[str, Any]) -> list[Path] | None:
    """The files a validated spec reads; None for generated data."""
    name = spec["name"]
    if name == "movielens-100k":
        return movielens_files()
    if name == "byo":
        schema_path = Path(spec["path"])
        _, data_path = load_byo_schema(schema_path)
        return [schema_path, data_path]
    if name == "criteo":
        return [Path(spec["path"])]
    if name == "movielens-1m":
        from ranking_models.data.movielens_1m import movielens_1m_files

        return list(movielens_1m_files())
    return None


def source_digest(spec: dict[str, Any], use_cache: bool = True) -> str | None:
    """Content digest of a spec's source files (cached by file stat); None for generated data."""
    files = source_files(spec)
    return None if files is None else files_sha256(files, use_cache)


def movielens_1m(spec: dict[str, Any]) -> RawTable:
    from ranking_models.data.movielens_1m import load_movielens_1m

    return load_movielens_1m(spec)


LOADERS = {
    "synthetic": synthetic,
    "movielens-100k": movielens_100k,
    "byo": byo,
    "criteo": criteo,
    "movielens-1m": movielens_1m,
}
