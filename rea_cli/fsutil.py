"""Small file helpers: atomic JSON writes (temp file + fsync + rename) and safe reads.

Permissions have one policy: every file and folder follows the process umask (rea never lets
it grant write access to others: see `secure_umask`), so a shared workspace (umask 002, setgid
folders) gives the group what the owner has, and a private one keeps the usual 644/755.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

FILE_MODE = 0o666  # what the umask leaves of it
LOCK_MODE = 0o666


def secure_umask(shared: bool = False) -> int:
    """Set this process's umask (children inherit it: trials, runners, wake-ups): never
    world-writable; in a shared workspace, the group gets what the owner has. Returns it."""
    current = os.umask(0o022)
    mask = current | 0o002
    if shared:
        mask &= ~0o070
    os.umask(mask)
    return mask


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so a reader sees the old file or the new one, never a partial one."""
    # no indent: only then does json use its C encoder (campaign.json is rewritten often)
    write_text_atomic(path, json.dumps(obj, sort_keys=True, default=str) + "\n")


def write_text_atomic(path: Path, text: str, *, mode: int = FILE_MODE) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), mode=mode)


def write_bytes_atomic(path: Path, data: bytes, *, mode: int = FILE_MODE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # name the file in the error (a write on a full disk)
        raise


def create_once(path: Path, data: bytes, *, mode: int = 0o444) -> None:
    """Write a file that must never be rewritten: created whole under a temp name, then linked
    to `path`, which fails (FileExistsError) when it exists. Read-only for everyone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: Path) -> Any | None:
    """Parsed JSON, or None when the file is missing or not (yet) valid JSON."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def free_mb(path: Path) -> float:
    """Free space (MB) for an unprivileged user on the filesystem holding `path`."""
    return shutil.disk_usage(path).free / 1e6
