"""The plan: three phases with their trials, fidelity, seeds, cost and gates. A plan is data.

`build_plan` is pure (inputs -> Plan); writing plan.json and binding its hash at approval is the
campaign module's job. Validation trials are fixed at planning time; combination and
exploitation trials depend on earlier results, so the plan fixes their rule and worst case.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rea_cli.campaign.model import Hypothesis
from rea_cli.config import Settings
from rea_cli.errors import UsageError
from rea_cli.planner import cost
from rea_cli.planner.catalog import CatalogEntry, entries_for

BASELINE = "baseline"
METRIC_DIRECTION = {"auc": "max", "ne": "min", "logloss": "min"}


class PhasePlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phase: Literal["validation", "combination", "exploitation"]
    rule: str
    hypotheses: list[str] = Field(default_factory=list)  # fixed for validation only
    max_trials: int
    seeds: list[int]
    fidelity: dict[str, Any]
    gpus_per_trial: int
    time_limit_min: int
    estimated_gpu_hours: float
    reserved_gpu_hours: float  # worst case: max_trials x time limit x GPUs
    gate: dict[str, Any] = Field(default_factory=dict)


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_: int = Field(1, alias="schema")
    campaign_id: str
    created_at: str
    goal: str
    model_family: str
    dataset: str
    data: dict[str, Any]
    metric: str
    direction: Literal["max", "min"]
    backend: Literal["local", "slurm"]
    budget_gpu_hours: float
    profile: str
    baseline: dict[str, Any]
    hypotheses: dict[str, Hypothesis]
    phases: list[PhasePlan]

    def phase(self, name: str) -> PhasePlan:
        for p in self.phases:
            if p.phase == name:
                return p
        raise KeyError(name)

    @property
    def reserved_gpu_hours(self) -> float:
        return sum(p.reserved_gpu_hours for p in self.phases)

    @property
    def estimated_gpu_hours(self) -> float:
        return sum(p.estimated_gpu_hours for p in self.phases)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def plan_hash(plan_bytes: bytes) -> str:
    return "sha256:" + hashlib.sha256(plan_bytes).hexdigest()


def parse_budget(text: str) -> float:
    """'4gpu-h', '4 gpu-h', '4', '90gpu-min' -> GPU-hours."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(gpu-?h(?:ours?)?|h|gpu-?min|min)?\s*", text.lower())
    if not m or float(m.group(1)) <= 0:
        raise UsageError(
            f"invalid budget {text!r}; give GPU-hours like '4gpu-h' or GPU-minutes like '90gpu-min'"
        )
    value = float(m.group(1))
    return value / 60.0 if m.group(2) and "min" in m.group(2) else value


@dataclass(frozen=True)
class Profile:
    """How big a campaign is: data size and training length of the baseline."""

    name: str
    train: dict[str, Any]
    synthetic_rows: int


PROFILES = {
    # seconds per trial on a laptop CPU: for tests and trying rea out
    "tiny": Profile(
        "tiny",
        {
            "train.epochs": 1,
            "train.batch_size": 256,
            "train.lr_dense": 3e-3,
            "train.lr_sparse": 1e-2,
        },
        synthetic_rows=20_000,
    ),
    # the README demo: MovieLens-100k on 2 CPU cores in a few minutes
    "demo": Profile("demo", {"train.epochs": 2, "train.batch_size": 1024}, synthetic_rows=50_000),
    # a real campaign: the model family's defaults
    "standard": Profile("standard", {}, synthetic_rows=200_000),
}


def data_spec(dataset: str, profile: Profile) -> dict[str, Any]:
    """Dataset argument of `rea plan` -> the trial spec's data section."""
    from ranking_models.data.registry import validate_data_spec

    if dataset == "synthetic":
        spec: dict[str, Any] = {"name": "synthetic", "n_rows": profile.synthetic_rows}
    elif dataset == "movielens-100k":
        spec = {"name": "movielens-100k"}
    elif dataset.startswith("criteo:"):
        spec = {"name": "criteo", "path": dataset.split(":", 1)[1]}
    elif dataset.endswith((".toml", ".yaml", ".yml")):
        spec = {"name": "byo", "path": dataset}
    else:
        raise UsageError(
            f"unknown dataset {dataset!r}; use movielens-100k, synthetic, criteo:FILE.tsv "
            "or a schema file (FILE.toml / FILE.yaml) for your own Parquet/CSV data"
        )
    try:
        return validate_data_spec(spec)
    except ValueError as exc:
        raise UsageError(f"dataset {dataset!r}: {exc}") from None


def baseline_config(family: str, profile: Profile) -> dict[str, Any]:
    from ranking_models.config import FAMILIES, apply_delta, default_config

    if family not in FAMILIES:
        raise UsageError(f"unknown model {family!r}; choose one of: {', '.join(FAMILIES)}")
    return apply_delta(default_config(family), profile.train)


def candidate_hypotheses(
    family: str,
    baseline: dict[str, Any],
    history: dict[str, float] | None = None,
    extra: list[CatalogEntry] | None = None,
) -> list[tuple[CatalogEntry, float]]:
    """Catalog entries valid for this baseline, ranked by prior blended with past gains."""
    from ranking_models.config import apply_delta, validate_config

    ranked = []
    for entry in entries_for(family, extra):
        try:
            changed = apply_delta(baseline, entry.delta)
            validate_config(changed)
        except ValueError:
            continue
        if changed == baseline:
            continue  # a no-op for this baseline
        score = entry.prior
        if history and entry.hypothesis_id in history:
            # past measured gain (oriented, metric units) dominates the prior when it exists
            score = 0.5 + 0.5 * math.tanh(history[entry.hypothesis_id] * 200)
        ranked.append((entry, score))
    ranked.sort(key=lambda pair: (-pair[1], pair[0].hypothesis_id))
    return ranked


def build_plan(
    *,
    campaign_id: str,
    created_at: str,
    goal: str,
    family: str,
    dataset: str,
    budget_gpu_hours: float,
    settings: Settings,
    profile_name: str = "standard",
    metric: str | None = None,
    history: dict[str, float] | None = None,
    extra_catalog: list[CatalogEntry] | None = None,
) -> Plan:
    """Propose hypotheses and plan validation -> combination -> exploitation within the budget."""
    if profile_name not in PROFILES:
        raise UsageError(f"unknown profile {profile_name!r}; choose one of: {', '.join(PROFILES)}")
    profile = PROFILES[profile_name]
    metric = metric or settings.planner.metric
    if metric not in METRIC_DIRECTION:
        raise UsageError(f"unknown metric {metric!r}; choose one of: auc, ne, logloss")
    data = data_spec(dataset, profile)
    baseline = baseline_config(family, profile)
    ranked = candidate_hypotheses(family, baseline, history, extra_catalog)
    if not ranked:
        raise UsageError(f"no catalog hypothesis applies to model {family!r}; pick another model")
    p = settings.planner
    n_hyp = min(p.max_hypotheses, len(ranked))
    while n_hyp >= 1:
        chosen = ranked[:n_hyp]
        phases = _phases(chosen, baseline, data, settings)
        total = sum(ph.reserved_gpu_hours for ph in phases)
        if total <= budget_gpu_hours + 1e-9:
            break
        n_hyp -= 1
    else:
        smallest = _phases(ranked[:1], baseline, data, settings)
        need = sum(ph.reserved_gpu_hours for ph in smallest)
        raise UsageError(
            f"budget {budget_gpu_hours:g} GPU-h is too small: the smallest plan needs "
            f"{need:.2f} GPU-h worst case; raise --budget or lower time_limit_min in rea.toml"
        )
    hypotheses = {
        BASELINE: Hypothesis(
            title="Baseline",
            rationale="The unchanged model config.",
            source="baseline",
            model_family=family,
        )
    }
    for entry, _score in chosen:
        source: Literal["insights_history", "research_kb"] = (
            "insights_history" if history and entry.hypothesis_id in history else "research_kb"
        )
        rationale = entry.rationale + (f" [{entry.reference}]" if entry.reference else "")
        hypotheses[entry.hypothesis_id] = Hypothesis(
            title=entry.title,
            rationale=rationale,
            source=source,
            delta=entry.delta,
            model_family=family,
        )
    return Plan(
        campaign_id=campaign_id,
        created_at=created_at,
        goal=goal or f"improve {metric} of {family} on {dataset}",
        model_family=family,
        dataset=dataset,
        data=data,
        metric=metric,
        direction=METRIC_DIRECTION[metric],
        backend=settings.backend,
        budget_gpu_hours=budget_gpu_hours,
        profile=profile_name,
        baseline=baseline,
        hypotheses=hypotheses,
        phases=phases,
    )


def _phases(
    chosen: list[tuple[CatalogEntry, float]],
    baseline: dict[str, Any],
    data: dict[str, Any],
    settings: Settings,
) -> list[PhasePlan]:
    p = settings.planner
    backend = settings.local if settings.backend == "local" else settings.slurm
    gpus = backend.gpus_per_trial
    epochs = int(baseline["train"]["epochs"])
    low = {
        "train.data_fraction": p.validation_data_fraction,
        "train.epochs": p.validation_epochs or max(1, epochs - 1),
    }
    full: dict[str, Any] = {}
    n_hyp = len(chosen)
    k = min(p.combination_top_k, n_hyp)
    n_combos = (2**k - 1 - k) if k >= 2 else 0  # every subset of >= 2 winners
    specs = [
        (
            "validation",
            "each hypothesis and the baseline, paired by seed, at low fidelity",
            [e.hypothesis_id for e, _ in chosen],
            (n_hyp + 1) * p.validation_seeds,
            list(range(p.validation_seeds)),
            low,
            {"min_gain": p.validation_min_gain, "top_k": k},
        ),
        (
            "combination",
            f"every combination of the top {k} validated hypotheses, compared with the baseline "
            "and single hypotheses measured in validation (same fidelity and seeds)",
            [],
            n_combos * min(p.combination_seeds, p.validation_seeds),
            list(range(min(p.combination_seeds, p.validation_seeds))),
            low,
            {"min_gain": 0.0},
        ),
        (
            "exploitation",
            "the best configuration and the baseline at full fidelity with more seeds",
            [],
            2 * p.exploitation_seeds,
            list(range(100, 100 + p.exploitation_seeds)),
            full,
            {"confidence": 0.95},
        ),
    ]
    phases = []
    for name, rule, hyps, n_trials, seeds, fidelity, gate in specs:
        est_h = cost.trial_hours(baseline, data, fidelity)
        limit = cost.time_limit_min(est_h, cap=backend.time_limit_min)
        phases.append(
            PhasePlan(
                phase=name,
                rule=rule,
                hypotheses=hyps,
                max_trials=n_trials,
                seeds=seeds,
                fidelity=fidelity,
                gpus_per_trial=gpus,
                time_limit_min=limit,
                estimated_gpu_hours=round(n_trials * est_h * max(gpus, 1), 4),
                reserved_gpu_hours=round(n_trials * limit / 60.0 * gpus, 4),
                gate=gate,
            )
        )
    return phases
