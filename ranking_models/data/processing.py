"""Raw table -> model-ready arrays: deterministic split, vocabularies, numeric transforms,
the trial config's ``features`` section, and the processed-data cache.

- Split: a permutation from ``split_seed``; test, valid, then train take ``test_fraction``,
  ``valid_fraction`` and the rest. The train split keeps that random order, so a
  ``data_fraction`` prefix is a fixed random subset for every trial.
- Vocabularies are built on the train split only: values seen fewer than ``min_frequency``
  times, and values never seen, map to the out-of-vocabulary index 0.
- Numerical columns: optional sign-safe log1p, missing values -> train mean, standardised with
  train mean/std. The raw values are kept too, for the features section's transforms.
- The features section (``ranking_models.data.features``) is applied on top of that base.

Cache (under ``$REA_DATA_DIR/processed/``, sources read from files only; generated data is
not cached): the base is a folder ``<name>-<key>/`` of .npy files + meta.json keyed by the
source files' content digest, the spec and PROCESSING_VERSION; the derived arrays of a
non-default features section are a folder ``<name>-<key>-f<fkey>/`` keyed by the base key,
the canonical JSON of the section and FEATURES_VERSION. Entries are written atomically and
read as memory maps; a corrupt entry is rebuilt, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ranking_models.config import FeatureConfig
from ranking_models.data import features as feats
from ranking_models.data.arrays import SPLITS, BaseData, BaseSplit, ProcessedData, Split
from ranking_models.data.registry import data_dir, validate_data_spec
from ranking_models.data.sources import LOADERS, RawTable, source_digest
from ranking_models.data.store import CorruptEntry, discard_entry, read_entry, write_entry
from ranking_models.errors import ConfigError, DataError, describe_pydantic_error

__all__ = [
    "SPLITS",
    "BaseData",
    "ProcessedData",
    "Split",
    "encode_categorical",
    "load_base",
    "load_data",
    "process",
    "transform_numerical",
]

log = logging.getLogger(__name__)

# 2: a folder of memory-mapped .npy files with the raw numerical values (was one .npz)
PROCESSING_VERSION = 2


def processed_dir() -> Path:
    return data_dir() / "processed"


def load_data(
    spec: dict[str, Any],
    features: FeatureConfig | dict[str, Any] | None = None,
    use_cache: bool = True,
) -> ProcessedData:
    """Validate a data spec, then load it processed with the features section applied (from
    the cache when possible). None or the default section gives the data spec's arrays."""
    spec = validate_data_spec(spec)
    section = feature_config(features)
    base = load_base(spec, use_cache)
    if feats.is_default(section):
        return base.processed()
    return _load_derived(base, section, use_cache and base.cached)


def feature_config(features: FeatureConfig | dict[str, Any] | None) -> FeatureConfig:
    if isinstance(features, FeatureConfig):
        return features
    try:
        return FeatureConfig.model_validate(features or {})
    except ValidationError as exc:
        valid = {"": list(FeatureConfig.model_fields)}
        raise ConfigError(describe_pydantic_error(exc, "invalid config features", valid)) from None


def base_key(spec: dict[str, Any], digest: str | None) -> str:
    src = json.dumps({"spec": spec, "source": digest, "v": PROCESSING_VERSION}, sort_keys=True)
    return hashlib.sha256(src.encode()).hexdigest()[:20]


def load_base(spec: dict[str, Any], use_cache: bool = True) -> BaseData:
    """The data spec's processing of a validated spec (from the cache when possible)."""
    digest = source_digest(spec, use_cache)
    key = base_key(spec, digest)
    path = processed_dir() / f"{spec['name']}-{key}"
    cached = use_cache and digest is not None
    if cached:
        try:
            return _read_base(path, key)
        except FileNotFoundError:
            pass
        except CorruptEntry as exc:
            log.warning("rebuilding the unreadable processed-data cache %s: %s", path, exc)
            discard_entry(path)
    raw = LOADERS[spec["name"]](spec)
    base = process_base(raw, spec, name=spec["name"], key=key)
    if cached:
        base.cached = write_entry(path, _base_arrays(base), _base_meta(base))
    return base


def process(raw: RawTable, spec: dict[str, Any], name: str, fingerprint: str) -> ProcessedData:
    """The data spec's processing of a raw table, as the trainer takes it."""
    return process_base(raw, spec, name, fingerprint).processed()


def process_base(raw: RawTable, spec: dict[str, Any], name: str, key: str) -> BaseData:
    n = len(raw)
    n_test = round(n * spec["test_fraction"])
    n_valid = round(n * spec["valid_fraction"])
    if n - n_test - n_valid < 1 or n_test < 1 or n_valid < 1:
        raise DataError(f"{name}: {n} rows are too few for a train/valid/test split")
    perm = np.random.default_rng(spec["split_seed"]).permutation(n)
    parts = {
        "test": perm[:n_test],
        "valid": perm[n_test : n_test + n_valid],
        "train": perm[n_test + n_valid :],
    }
    train_idx = parts["train"]
    if len(np.unique(raw.label[train_idx])) < 2:
        raise DataError(f"{name}: the train split has only one label value; need both 0 and 1")
    cat_cols, vocab_sizes = [], []
    for col in raw.categorical.values():
        codes, size = encode_categorical(col, train_idx, spec["min_frequency"])
        cat_cols.append(codes)
        vocab_sizes.append(size)
    num_cols = [
        transform_numerical(col, train_idx, log1p=name_ in raw.log1p)
        for name_, col in raw.numerical.items()
    ]
    x_cat = np.stack(cat_cols, axis=1) if cat_cols else np.zeros((n, 0), np.int64)
    x_num = (
        np.stack(num_cols, axis=1).astype(np.float32) if num_cols else np.zeros((n, 0), np.float32)
    )
    raw_num = (
        np.stack([np.asarray(c, np.float64) for c in raw.numerical.values()], axis=1)
        if raw.numerical
        else np.zeros((n, 0), np.float64)
    )
    splits = {
        k: BaseSplit(
            np.ascontiguousarray(x_cat[idx]),
            np.ascontiguousarray(x_num[idx]),
            raw.label[idx],
            np.ascontiguousarray(raw_num[idx]),
        )
        for k, idx in parts.items()
    }
    return BaseData(
        name=name,
        cat_names=list(raw.categorical),
        vocab_sizes=vocab_sizes,
        num_names=list(raw.numerical),
        log1p=[c for c in raw.numerical if c in raw.log1p],
        min_frequency=spec["min_frequency"],
        key=key,
        splits=splits,
    )


def encode_categorical(
    col: np.ndarray, train_idx: np.ndarray, min_frequency: int
) -> tuple[np.ndarray, int]:
    """Codes 1..V for train values seen >= min_frequency times, 0 (OOV) otherwise; V + 1."""
    values, counts = np.unique(col[train_idx], return_counts=True)
    vocab = values[counts >= min_frequency]
    if len(vocab) == 0:
        return np.zeros(len(col), np.int64), 1
    pos = np.clip(np.searchsorted(vocab, col), 0, len(vocab) - 1)
    codes = np.where(vocab[pos] == col, pos + 1, 0).astype(np.int64)
    return codes, len(vocab) + 1


def transform_numerical(col: np.ndarray, train_idx: np.ndarray, log1p: bool) -> np.ndarray:
    """Optional sign-safe log1p, missing -> train mean, standardised with train mean/std."""
    mean, std = feats.fit_standardiser(np.asarray(col, np.float64)[train_idx], log1p)
    return feats.apply_standardiser(col, log1p, mean, std)


# ---------------------------------------------------------------- cache entries


def _base_meta(base: BaseData) -> dict[str, Any]:
    return {
        "name": base.name,
        "cat_names": base.cat_names,
        "vocab_sizes": base.vocab_sizes,
        "num_names": base.num_names,
        "log1p": base.log1p,
        "min_frequency": base.min_frequency,
        "key": base.key,
    }


def _base_arrays(base: BaseData) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for s in SPLITS:
        split = base.splits[s]
        out |= {
            f"{s}_x_cat": split.x_cat,
            f"{s}_x_num": split.x_num,
            f"{s}_y": split.y,
            f"{s}_raw_num": split.raw_num,
        }
    return out


def _read_base(path: Path, key: str) -> BaseData:
    meta, arrays = read_entry(path)
    try:
        if meta["key"] != key:
            raise CorruptEntry(f"meta.json is for key {meta['key']}, not {key}")
        splits = {
            s: BaseSplit(
                arrays[f"{s}_x_cat"], arrays[f"{s}_x_num"], arrays[f"{s}_y"], arrays[f"{s}_raw_num"]
            )
            for s in SPLITS
        }
        base = BaseData(**meta, splits=splits)
    except (KeyError, TypeError) as exc:
        raise CorruptEntry(f"meta.json or the arrays are incomplete: {exc!r}") from None
    _check_shapes(base.splits, len(base.cat_names), len(base.num_names))
    base.cached = True
    return base


def _check_shapes(splits: dict[str, Any], n_cat: int, n_num: int) -> None:
    for s, split in splits.items():
        n = len(split.y)
        if split.x_cat.shape != (n, n_cat) or split.x_num.shape != (n, n_num):
            raise CorruptEntry(f"the {s} arrays do not match meta.json")
        if isinstance(split, BaseSplit) and split.raw_num.shape != (n, n_num):
            raise CorruptEntry(f"the {s} raw numerical values do not match meta.json")


def features_key(base: BaseData, section: FeatureConfig) -> str:
    src = json.dumps(
        {
            "base": base.key,
            "features": section.model_dump(mode="json"),
            "v": feats.FEATURES_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(src.encode()).hexdigest()[:20]


def _load_derived(base: BaseData, section: FeatureConfig, use_cache: bool) -> ProcessedData:
    fkey = features_key(base, section)
    key = f"{base.key}-f{fkey}"
    path = processed_dir() / f"{base.name}-{key}"
    if use_cache:
        try:
            meta, arrays = read_entry(path)
            data = feats.assemble(base, meta, arrays, key)
            _check_shapes(
                {"train": data.train, "valid": data.valid, "test": data.test},
                len(data.cat_names),
                len(data.num_names),
            )
            return data
        except FileNotFoundError:
            pass
        except (CorruptEntry, KeyError, TypeError) as exc:
            log.warning("rebuilding the unreadable derived-feature cache %s: %s", path, exc)
            discard_entry(path)
    derived = feats.derive(base, section)
    meta, arrays = derived.meta(), derived.arrays()
    if derived.crosses:
        log.info("feature crosses: %s", ", ".join(f"{a} x {b}" for a, b in derived.crosses))
    if use_cache:
        write_entry(path, arrays, {**meta, "key": key})
    return feats.assemble(base, meta, arrays, key)
