"""sha256 of source files, cached by (path, size, mtime_ns, inode) so an unchanged file is
hashed once, not at every trial start.

The cache is one small JSON file per (file, stat) under ``$REA_DATA_DIR/digests/``: concurrent
trials never write the same shared file, and each entry is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from ranking_models.data.registry import data_dir

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def _stat_key(path: Path) -> tuple[str, dict[str, int | str]]:
    st = path.stat()
    ident: dict[str, int | str] = {
        "path": str(path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "inode": st.st_ino,
    }
    name = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]
    return name, ident


def hash_file(path: Path) -> str:
    """sha256 of a file's contents, read in full."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path, use_cache: bool = True) -> str:
    """sha256 of a file's contents; from the digest cache when its stat is unchanged."""
    name, ident = _stat_key(path)
    entry = data_dir() / "digests" / f"{name}.json"
    if use_cache:
        try:
            cached = json.loads(entry.read_text())
            if {k: cached.get(k) for k in ident} == ident and len(cached["sha256"]) == 64:
                return str(cached["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # missing or torn entry: hash the file again
    digest = hash_file(path)
    if use_cache:
        _write_entry(entry, {**ident, "sha256": digest})
    return digest


def files_sha256(paths: list[Path], use_cache: bool = True) -> str:
    """One file: its content sha256. Several: sha256 over their names and content digests."""
    digests = [file_sha256(p, use_cache) for p in paths]
    if len(digests) == 1:
        return digests[0]
    lines = "".join(f"{p.name}\t{d}\n" for p, d in zip(paths, digests, strict=True))
    return hashlib.sha256(lines.encode()).hexdigest()


def _write_entry(path: Path, obj: dict[str, int | str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache only costs speed
        log.warning("could not write the digest cache entry %s: %s", path, exc)
