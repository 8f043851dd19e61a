"""A cache entry: a folder of .npy files plus meta.json, written atomically, read memory-mapped.

Writers build the folder under a temporary name and rename it into place, so a reader sees a
whole entry or none; when two writers race, the first rename wins and the other is dropped.
Reading maps the files copy-on-write: nothing is read until used, pages are shared between
the trials of a node, and a write to an array never reaches the file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

META = "meta.json"


class CorruptEntry(ValueError):
    """A cache entry that is incomplete or does not match its meta.json."""


def write_entry(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bool:
    """Write the entry at path (a folder); False when it could not be written (logged)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".tmp-{path.name}-"))
    except OSError as exc:  # a read-only cache only costs speed
        log.warning("could not write the cache entry %s: %s", path, exc)
        return False
    try:
        shapes = {}
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr))
            shapes[name] = {"shape": list(arr.shape), "dtype": arr.dtype.str}
        (tmp / META).write_text(json.dumps({**meta, "arrays": shapes}, indent=1))
        os.chmod(tmp, 0o755)  # shared cache: mkdtemp's 0700 would lock others out
        os.rename(tmp, path)
        return True
    except OSError as exc:
        if not path.is_dir():  # else another process wrote it first: theirs is as good
            log.warning("could not write the cache entry %s: %s", path, exc)
        shutil.rmtree(tmp, ignore_errors=True)
        return path.is_dir()


def read_entry(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """meta.json and the arrays (copy-on-write memory maps); CorruptEntry if they disagree.

    FileNotFoundError when there is no entry at all.
    """
    try:
        meta = json.loads((path / META).read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise CorruptEntry(f"unreadable {META}: {exc}") from None
    arrays = {}
    try:
        for name, want in meta.pop("arrays").items():
            arr = np.load(path / f"{name}.npy", mmap_mode="c", allow_pickle=False)
            if list(arr.shape) != want["shape"] or arr.dtype.str != want["dtype"]:
                raise CorruptEntry(f"{name}.npy is {arr.dtype.str}{list(arr.shape)}, not {want}")
            arrays[name] = arr
    except CorruptEntry:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptEntry(f"{type(exc).__name__}: {exc}") from None
    return meta, arrays


def discard_entry(path: Path) -> None:
    """Remove an entry (a corrupt one before it is rebuilt); readers of it keep their maps."""
    try:
        trash = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".trash-{path.name}-"))
        os.rename(path, trash / "entry")
        shutil.rmtree(trash, ignore_errors=True)
    except OSError as exc:
        log.warning("could not remove the cache entry %s: %s", path, exc)
