"""SPEC (what ``rea plan --dataset`` accepts) -> data spec, through rea's own resolver.

One small function, :func:`data_spec`, so the benchmark and rea train on the same split: the
searches get exactly the ``data`` section that ``rea plan --profile P`` writes into its plan.
"""

from __future__ import annotations

from typing import Any

from benchmarks.searchbench.errors import BenchError


def data_spec(name: str, profile: str = "standard") -> dict[str, Any]:
    """The validated trial ``data`` section for SPEC; BenchError (one line) when unusable."""
    from rea_cli.errors import ReaError
    from rea_cli.planner.plan import data_spec as rea_data_spec

    try:
        return rea_data_spec(name, profile)
    except ReaError as exc:
        raise BenchError(f"--dataset: {exc}") from None


def slug(name: str) -> str:
    """A file-name-safe form of SPEC (paths and colons replaced)."""
    keep = [c if c.isalnum() or c in "-_." else "_" for c in name.rsplit("/", 1)[-1]]
    return "".join(keep).strip("._") or "data"
