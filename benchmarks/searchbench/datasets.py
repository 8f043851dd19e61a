"""SPEC (what ``rea plan --dataset`` accepts, plus the benchmark's named data sets) -> data spec.

One small function, :func:`data_spec`, so the benchmark and rea train on the same split: the
names rea knows go through rea's own resolver (the ``standard`` profile, as a real campaign);
the benchmark adds names rea may not know yet.
"""

from __future__ import annotations

import copy
from typing import Any

from benchmarks.searchbench.errors import BenchError

# Synthetic data with effects the default config cannot reach (skewed numerics with a
# non-monotone effect, a feature cross, a slow-to-converge interaction).
PLANTED: dict[str, Any] = {
    "name": "synthetic",
    "effects": ["nonmonotone_numeric", "cross", "slow_interaction"],
    "n_rows": 50_000,
}
NAMED: dict[str, dict[str, Any]] = {
    "synthetic-planted": PLANTED,
    "movielens-1m": {"name": "movielens-1m"},
}


def data_spec(name: str) -> dict[str, Any]:
    """The validated trial ``data`` section for SPEC; BenchError (one line) when unusable."""
    from ranking_models.data.registry import validate_data_spec

    if name in NAMED:
        spec = copy.deepcopy(NAMED[name])
    else:
        from rea_cli.errors import ReaError
        from rea_cli.planner.plan import PROFILES
        from rea_cli.planner.plan import data_spec as rea_data_spec

        try:
            spec = rea_data_spec(name, PROFILES["standard"])
        except ReaError as exc:
            also = f", or one of: {', '.join(NAMED)}" if "unknown dataset" in str(exc) else ""
            raise BenchError(f"--dataset: {exc}{also}") from None
    try:
        return validate_data_spec(spec)
    except ValueError as exc:
        raise BenchError(
            f"--dataset {name}: {exc} (this checkout's ranking_models may not have it yet)"
        ) from None


def slug(name: str) -> str:
    """A file-name-safe form of SPEC (paths and colons replaced)."""
    keep = [c if c.isalnum() or c in "-_." else "_" for c in name.rsplit("/", 1)[-1]]
    return "".join(keep).strip("._") or "data"
