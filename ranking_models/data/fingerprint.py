"""Data fingerprints: what the source looked like when a plan was approved, checked again
before a trial trains on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ranking_models.contracts import DataFingerprint
from ranking_models.data.digests import files_sha256
from ranking_models.data.registry import validate_data_spec
from ranking_models.data.sources import source_files
from ranking_models.errors import DataChanged, join_names

FIX = "the data changed after the plan was approved; restore it or plan a new campaign"


def fingerprint(spec: dict[str, Any]) -> DataFingerprint:
    """Size (bytes), rows and content sha256 of the spec's source files; rows only for
    generated data. The digest comes from the digest cache when the files are unchanged."""
    spec = validate_data_spec(spec)
    files = source_files(spec)
    if files is None:
        return DataFingerprint(rows=spec["n_rows"])
    return DataFingerprint(size=_size(files), rows=_rows(spec), sha256=files_sha256(files))


def check_fingerprint(spec: dict[str, Any], expected: DataFingerprint | dict[str, Any]) -> None:
    """Raise DataChanged (one line: the file, what changed, the fix) when the source differs.

    Cheapest first: sizes, then the content digest, then the row count.
    """
    expected = DataFingerprint.model_validate(expected)
    spec = validate_data_spec(spec)
    files = source_files(spec)
    where = "the generated data" if files is None else join_names(str(p) for p in files)
    if files is not None:
        size = _size(files)
        if expected.size is not None and size != expected.size:
            raise DataChanged(f"{where}: size {expected.size} -> {size} bytes; {FIX}")
        digest = files_sha256(files)
        if expected.sha256 is not None and digest != expected.sha256:
            raise DataChanged(
                f"{where}: content hash (sha256) {expected.sha256[:12]}... -> {digest[:12]}...; "
                f"{FIX}"
            )
    if expected.rows is not None:
        rows = spec["n_rows"] if files is None else _rows(spec)
        if rows != expected.rows:
            raise DataChanged(f"{where}: rows {expected.rows} -> {rows}; {FIX}")


def _size(files: list[Path]) -> int:
    return sum(p.stat().st_size for p in files)


def _rows(spec: dict[str, Any]) -> int:
    from ranking_models.data.processing import load_base  # numpy work: only when needed

    return load_base(spec).n_rows
