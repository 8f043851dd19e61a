"""Raw table -> model-ready arrays: deterministic split, vocabularies, numeric transforms, cache.

- Split: a permutation from ``split_seed``; test, valid, then train take ``test_fraction``,
  ``valid_fraction`` and the rest. The train split keeps that random order, so a
  ``data_fraction`` prefix is a fixed random subset for every trial.
- Vocabularies are built on the train split only: values seen fewer than ``min_frequency``
  times, and values never seen, map to the out-of-vocabulary index 0.
- Numerical columns: optional sign-safe log1p, missing values -> train mean, standardised with
  train mean/std.
- The processed arrays are cached under ``$REA_DATA_DIR/processed/`` keyed by the sha256 of the
  source files' contents, the spec and PROCESSING_VERSION.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from ranking_models.data.registry import data_dir, validate_data_spec
from ranking_models.data.sources import LOADERS, RawTable, source_digest
from ranking_models.errors import DataError

log = logging.getLogger(__name__)

PROCESSING_VERSION = 1
SPLITS = ("train", "valid", "test")


@dataclass
class Split:
    """One split as arrays: x_cat int64 [n, F] (0 = OOV), x_num float32 [n, D], y float32 [n]."""

    x_cat: np.ndarray
    x_num: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class ProcessedData:
    """A dataset ready for training; ``vocab_sizes`` include the OOV index 0."""

    name: str
    cat_names: list[str]
    vocab_sizes: list[int]
    num_names: list[str]
    train: Split
    valid: Split
    test: Split
    fingerprint: str

    @property
    def background_ctr(self) -> float:
        """Positive rate of the whole train split (the NE denominator's CTR)."""
        return float(self.train.y.mean())

    def split(self, name: str) -> Split:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]


def load_data(spec: dict[str, Any], use_cache: bool = True) -> ProcessedData:
    """Validate a data spec, then load it processed (from the cache when possible)."""
    spec = validate_data_spec(spec)
    digest = source_digest(spec)
    key_src = json.dumps({"spec": spec, "source": digest, "v": PROCESSING_VERSION}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:20]
    cache_path = data_dir() / "processed" / f"{spec['name']}-{key}.npz"
    if use_cache and digest is not None and cache_path.is_file():
        try:
            return _read_cache(cache_path)
        except Exception as exc:  # a corrupt cache file is rebuilt, never fatal
            log.warning("ignoring unreadable processed-data cache %s: %s", cache_path, exc)
    raw = LOADERS[spec["name"]](spec)
    data = process(raw, spec, name=spec["name"], fingerprint=key)
    if use_cache and digest is not None:
        _write_cache(cache_path, data)
    return data


def process(raw: RawTable, spec: dict[str, Any], name: str, fingerprint: str) -> ProcessedData:
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
    splits = {
        k: Split(np.ascontiguousarray(x_cat[idx]), np.ascontiguousarray(x_num[idx]), raw.label[idx])
        for k, idx in parts.items()
    }
    return ProcessedData(
        name=name,
        cat_names=list(raw.categorical),
        vocab_sizes=vocab_sizes,
        num_names=list(raw.numerical),
        fingerprint=fingerprint,
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
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
    x = np.asarray(col, dtype=np.float64)
    if log1p:
        x = np.sign(x) * np.log1p(np.abs(x))
    train = x[train_idx]
    finite = train[np.isfinite(train)]
    mean = float(finite.mean()) if finite.size else 0.0
    std = float(finite.std()) if finite.size else 1.0
    x = np.where(np.isfinite(x), x, mean)
    return (x - mean) / (std if std > 1e-12 else 1.0)


def _write_cache(path: Any, data: ProcessedData) -> None:
    meta = {
        "name": data.name,
        "cat_names": data.cat_names,
        "vocab_sizes": data.vocab_sizes,
        "num_names": data.num_names,
        "fingerprint": data.fingerprint,
    }
    arrays = {"meta": np.array(json.dumps(meta))}
    for s in SPLITS:
        split = data.split(s)
        arrays |= {f"{s}_x_cat": split.x_cat, f"{s}_x_num": split.x_num, f"{s}_y": split.y}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache only costs speed
        log.warning("could not write processed-data cache %s: %s", path, exc)


def _read_cache(path: Any) -> ProcessedData:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        splits = {s: Split(z[f"{s}_x_cat"], z[f"{s}_x_num"], z[f"{s}_y"]) for s in SPLITS}
    return ProcessedData(**meta, train=splits["train"], valid=splits["valid"], test=splits["test"])
