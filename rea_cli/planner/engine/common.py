"""What the engine's phases share: trial definitions, steps, and a view of the results."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ranking_models.contracts import PruneRule
from rea_cli.campaign.model import Campaign, Gate, Hypothesis, Proposal, TrialRecord
from rea_cli.campaign.state import TrialStatus
from rea_cli.planner.stats import signed

BASELINE = "baseline"
FULL: dict[str, Any] = {}
STOP = "train.stop_at_epoch"
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]")


@dataclass(frozen=True)
class TrialDef:
    """One trial to run: hypothesis x seed x fidelity (a delta such as a rung's stop epoch)."""

    trial_id: str
    hypothesis_id: str
    seed: int
    fidelity: dict[str, Any]
    lineage: str  # checkpoint folder: a trial continues the checkpoint of its lineage
    prune: PruneRule | None = None
    cost: float = 1.0  # expected cost in trial-equivalents
    priority: float = 0.0  # when the budget fits only part of a step, higher runs first


@dataclass
class Step:
    """The trials of one step of a phase (the app skips those that already exist)."""

    phase: str
    kind: str  # probe | rung | final | step | batch | confirmation
    trials: list[TrialDef]
    note: str
    new_hypotheses: dict[str, Hypothesis] = field(default_factory=dict)
    gates: dict[str, Gate] = field(default_factory=dict)  # phase -> gate decided on the way
    selected: list[str] | None = None  # the hypotheses validation screens, once decided


@dataclass
class Finish:
    """No trial left to run: the proposal."""

    proposal: Proposal
    gates: dict[str, Gate] = field(default_factory=dict)


def safe_id(text: str) -> str:
    return _UNSAFE.sub("_", text)


def fidelity_key(fidelity: dict[str, Any]) -> str:
    return json.dumps(fidelity, sort_keys=True, separators=(",", ":"))


def trial_id(phase: str, hypothesis_id: str, seed: int, fidelity: dict[str, Any]) -> str:
    stop = fidelity.get(STOP)
    suffix = f"-e{stop}" if stop else ""
    return safe_id(f"{phase}-{hypothesis_id}-s{seed}{suffix}")


def lineage(hypothesis_id: str, seed: int) -> str:
    return safe_id(f"{hypothesis_id}-s{seed}")


def trial_def(
    phase: str,
    hypothesis_id: str,
    seed: int,
    fidelity: dict[str, Any] | None = None,
    *,
    cost: float = 1.0,
    priority: float = 0.0,
    prune: PruneRule | None = None,
) -> TrialDef:
    fid = dict(fidelity or {})
    return TrialDef(
        trial_id=trial_id(phase, hypothesis_id, seed, fid),
        hypothesis_id=hypothesis_id,
        seed=seed,
        fidelity=fid,
        lineage=lineage(hypothesis_id, seed),
        prune=prune,
        cost=cost,
        priority=priority,
    )


class Results:
    """The campaign's trials indexed by (hypothesis, seed, fidelity), whatever their phase."""

    def __init__(self, campaign: Campaign, direction: str) -> None:
        self.direction = direction
        self.by_key: dict[tuple[str, int, str], TrialRecord] = {}
        for t in campaign.trials.values():
            key = (t.hypothesis_id, t.seed, fidelity_key(t.fidelity))
            old = self.by_key.get(key)
            # a succeeded record wins over an older failed one of the same trial identity
            if old is None or t.status is TrialStatus.SUCCEEDED:
                self.by_key[key] = t

    def get(
        self, hid: str, seed: int, fidelity: dict[str, Any] | None = None
    ) -> TrialRecord | None:
        return self.by_key.get((hid, seed, fidelity_key(fidelity or FULL)))

    def finished(self, hid: str, seed: int, fidelity: dict[str, Any] | None = None) -> bool:
        t = self.get(hid, seed, fidelity)
        return t is not None and t.status.is_finished

    def all_finished(self, trials: Iterable[TrialDef]) -> bool:
        return all(self.finished(t.hypothesis_id, t.seed, t.fidelity) for t in trials)

    def value(self, hid: str, seed: int, fidelity: dict[str, Any] | None = None) -> float | None:
        """The valid metric at the trial's best epoch (None: not succeeded)."""
        t = self.get(hid, seed, fidelity)
        if t is None or t.status is not TrialStatus.SUCCEEDED:
            return None
        return t.metric_value

    def failed(self, hid: str, seed: int, fidelity: dict[str, Any] | None = None) -> bool:
        t = self.get(hid, seed, fidelity)
        return t is not None and t.status in (TrialStatus.FAILED, TrialStatus.CANCELLED)

    def best_through(self, hid: str, seed: int, epochs: int) -> float | None:
        """The best valid metric within the first `epochs` epochs of the hypothesis's full
        run (or of any of its runs that went that far): comparing at equal training."""
        for t in self._runs(hid, seed):
            points = [p.value for p in t.curve if p.epoch < epochs and p.value is not None]
            if len(points) >= epochs or (
                t.stopped in ("early_stopping", "pruned") and points and len(t.curve) < epochs
            ):
                return max(points, key=lambda v: signed(v, self.direction)) if points else None
        return None

    def _runs(self, hid: str, seed: int) -> list[TrialRecord]:
        runs = [
            t
            for (h, s, _), t in self.by_key.items()
            if h == hid and s == seed and t.status is TrialStatus.SUCCEEDED
        ]
        return sorted(runs, key=lambda t: -len(t.curve))

    def oriented(self, value: float) -> float:
        return signed(value, self.direction)
