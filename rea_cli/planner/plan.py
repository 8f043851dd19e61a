"""The plan: what a campaign will do within its budget, as data. `build_plan` is pure.

A plan holds the baseline (config, data, its profile), the ranked pool of hypotheses with the
numbers behind each rank, the knowledge-base entries they came from (so that, after the
baseline's probe, the engine can re-rank with the training profile without reading any file
that could have changed since approval), the engine's settings, and per phase its rule, its
expected cost and its worst case. Writing plan.json and binding its hash at approval is the
campaign's job.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ranking_models.contracts import DataFingerprint
from rea_cli.campaign.model import Hypothesis
from rea_cli.config import Settings
from rea_cli.errors import UsageError
from rea_cli.planner import cost as cost_model
from rea_cli.planner.ranking import HistoryRow, RankNumbers
from rea_cli.runbooks import Runbook

BASELINE = "baseline"
METRIC_DIRECTION = {"auc": "max", "ne": "min", "logloss": "min"}
PLAN_SCHEMA = 2


class PhasePlan(BaseModel):
    """One phase as planned: its rule, how much it is expected to run and cost."""

    model_config = ConfigDict(extra="forbid")

    phase: Literal["validation", "combination", "exploitation"]
    rule: str
    max_trials: int  # trials of the phase as planned (trial-equivalents may differ)
    trial_equivalents: float  # expected cost in full baseline trials
    estimated_gpu_hours: float
    reserved_gpu_hours: float  # worst case: every trial runs to its time limit
    time_limit_min: float  # of a full-fidelity trial
    gpus_per_trial: int


class EngineSettings(BaseModel):
    """The engine's parameters for this campaign (settings of rea.toml, fitted to the budget)."""

    model_config = ConfigDict(extra="forbid")

    validation_seeds: list[int]
    screen_seeds: int
    rung_epochs: list[int]  # stop epochs of the early rungs ([] when the horizon is 1 epoch)
    eta: int
    screen: int  # hypotheses screened
    correction: Literal["bh", "holm"]
    significance: float
    combination_max_steps: int
    exploitation_batch: int
    stall_batches: int
    search_rounds: int = 3
    confirm_seeds: list[int]
    patience: int
    budget_te: float  # the budget in trial-equivalents (full baseline trials), as planned
    te_gpu_hours: float  # GPU-hours of one full baseline trial, as planned
    shares: dict[str, float]  # phase -> trial-equivalents planned for it
    seed: int = 0  # the campaign's seed: its trial seeds and the search's sampler
    # what every trial costs whatever its length (start, data, evaluations), in TE: a trial
    # stopped at a third of the epochs costs this plus a third of the rest
    trial_overhead_te: float = 0.0


class RankedHypothesis(BaseModel):
    hypothesis_id: str
    numbers: RankNumbers


class DroppedHypothesis(BaseModel):
    hypothesis_id: str | None
    strategy: str
    source: str
    reason: str


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: int = Field(PLAN_SCHEMA, alias="schema")
    campaign_id: str
    created_at: str
    goal: str
    model_family: str
    dataset: str
    data: dict[str, Any]
    data_fingerprint: DataFingerprint | None = None
    data_profile: dict[str, Any] = Field(default_factory=dict)
    traits: str = ""
    metric: str
    direction: Literal["max", "min"]
    backend: Literal["local", "slurm"]
    budget_gpu_hours: float
    profile: str
    baseline: dict[str, Any]
    hypotheses: dict[str, Hypothesis]  # the baseline and the ranked pool
    ranking: list[RankedHypothesis] = Field(default_factory=list)
    dropped: list[DroppedHypothesis] = Field(default_factory=list)
    knowledge: list[dict[str, Any]] = Field(default_factory=list)  # raw entries, for re-ranking
    history: list[dict[str, Any]] = Field(default_factory=list)  # HistoryRow fields
    cost: dict[str, Any] = Field(default_factory=dict)  # the cost model used
    # the runbooks the campaign diagnoses failures with, validated and bound with the plan
    # (empty in plans written before they were: then the workspace's are read)
    runbooks: list[Runbook] = Field(default_factory=list)
    engine: EngineSettings
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

    def history_rows(self) -> list[HistoryRow]:
        return [HistoryRow(**row) for row in self.history]

    def cost_model(self) -> cost_model.CostModel:
        return cost_model.CostModel(**self.cost)

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
    hours = value / 60.0 if m.group(2) and "min" in m.group(2) else value
    if not math.isfinite(hours) or hours > 1e6:
        raise UsageError(f"invalid budget {text!r}: at most 1,000,000 GPU-hours")
    return hours


# Baseline training of each profile (the model family's defaults otherwise).
PROFILES: dict[str, dict[str, Any]] = {
    # seconds per trial on a laptop CPU: for tests and trying rea out
    "tiny": {"train.epochs": 2, "train.batch_size": 256},
    # the README demo: MovieLens-100k on 2 CPU cores in a few minutes
    "demo": {"train.epochs": 3, "train.batch_size": 1024},
    # a real campaign: the model family's defaults
    "standard": {},
}
SYNTHETIC_ROWS = {"tiny": 20_000, "demo": 50_000, "standard": 200_000}
PLANTED = ["nonmonotone_numeric", "cross", "slow_interaction"]


def data_spec(dataset: str, profile: str) -> dict[str, Any]:
    """Dataset argument of `rea plan` -> the trial spec's data section (validated)."""
    from ranking_models.data.registry import validate_data_spec

    rows = SYNTHETIC_ROWS.get(profile, 200_000)
    spec: dict[str, Any]
    if dataset == "synthetic":
        spec = {"name": "synthetic", "n_rows": rows}
    elif dataset == "synthetic-planted":
        spec = {"name": "synthetic", "n_rows": rows, "effects": list(PLANTED)}
    elif dataset in ("movielens-100k", "movielens-1m"):
        spec = {"name": dataset}
    elif dataset.startswith("criteo:"):
        spec = {"name": "criteo", "path": dataset.split(":", 1)[1]}
    elif dataset.endswith((".toml", ".yaml", ".yml")):
        spec = {"name": "byo", "path": dataset}
    else:
        raise UsageError(
            f"unknown dataset {dataset!r}; use movielens-100k, movielens-1m, synthetic, "
            "synthetic-planted, criteo:FILE.tsv or a schema file (FILE.toml / FILE.yaml) for "
            "your own Parquet/CSV data"
        )
    try:
        return validate_data_spec(spec)
    except ValueError as exc:
        raise UsageError(f"dataset {dataset!r}: {exc}") from None


def baseline_config(family: str, profile: str, metric: str) -> dict[str, Any]:
    """The family's default config, the profile's training, best epoch watched on `metric`."""
    from ranking_models.config import FAMILIES, apply_delta, default_config

    if family not in FAMILIES:
        raise UsageError(f"unknown model {family!r}; choose one of: {', '.join(FAMILIES)}")
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    if metric not in METRIC_DIRECTION:
        raise UsageError(f"unknown metric {metric!r}; choose one of: {', '.join(METRIC_DIRECTION)}")
    return apply_delta(default_config(family), {**PROFILES[profile], "train.monitor": metric})


def rung_epochs(epochs: int, eta: int) -> list[int]:
    """Early rungs of successive halving: every eta-th fraction of the horizon, >= 1 epoch."""
    rungs, stop = [], epochs
    while True:
        stop = stop // eta
        if stop < 1:
            break
        rungs.append(stop)
    return sorted(set(rungs))


def trial_te(cost: float, overhead_te: float) -> float:
    """A trial's expected TE: the fixed part every trial pays, plus its share of the rest."""
    return overhead_te + (1.0 - overhead_te) * cost


def screen_cost(costs: list[float], n: int, s: EngineSettings, epochs: int) -> float:
    """Expected trial-equivalents of validating the first n hypotheses of the ranked pool."""
    chosen = costs[:n]
    if not chosen:
        return 0.0
    f = s.trial_overhead_te
    frac = (s.rung_epochs[0] / epochs) if s.rung_epochs else 1.0
    early = sum(trial_te(c * frac, f) * s.screen_seeds for c in chosen) if s.rung_epochs else 0.0
    promoted = (
        sorted(chosen, reverse=True)[: max(1, math.ceil(n / s.eta))] if s.rung_epochs else chosen
    )
    v = len(s.validation_seeds)
    continued = s.screen_seeds if s.rung_epochs else 0  # they go on from their checkpoints
    final = sum(
        trial_te(c * (1 - frac), f) * continued + trial_te(c, f) * (v - continued) for c in promoted
    )
    return early + final


# A change worth confirming usually costs more than the baseline (more feature fields, a wider
# or longer model): the plan prices a candidate's confirmation runs at this many baseline
# trials; the campaign prices them at what the candidate measured.
CANDIDATE_COST = 1.5


def confirmation_cost(seeds: int, headroom_te: float, candidate: float = CANDIDATE_COST) -> float:
    """TE of a confirmation on `seeds` fresh seeds (the candidate's runs and the baseline's),
    with the headroom its last trial needs: the budget guard reserves a trial's worst case
    (its time limit and what the scheduler lets it overrun), not what it will spend."""
    return seeds * (candidate + 1.0) + headroom_te


SEED_STRIDE = 10_000  # campaign seeds s and s+1 never share a trial seed


def trial_seeds(seed: int, validation: int, confirmation: int) -> tuple[list[int], list[int]]:
    """The validation seeds and the confirmation's fresh seeds of a campaign seeded `seed`."""
    base = SEED_STRIDE * seed
    return (
        list(range(base, base + validation)),
        list(range(base + 1000, base + 1000 + confirmation)),
    )


def fit_engine(
    *,
    settings: Settings,
    budget_te: float,
    te_gpu_hours: float,
    epochs: int,
    pool_costs: list[float],
    seed: int = 0,
    overhead_te: float = 0.0,
    headroom_te: float = 1.0,
) -> EngineSettings:
    """The engine's settings for a budget of `budget_te` full baseline trials.

    Fixed costs first: the probe (the baseline on the validation seeds) and the confirmation
    (candidate and baseline on fresh seeds). Of the rest, validation may take about half (as many
    hypotheses as fit, at most max_hypotheses), combination a sixth, exploitation the remainder.
    Refuses (UsageError naming the smallest budget) when not even one hypothesis fits.
    """
    p = settings.planner
    validation_seeds, confirm_seeds = trial_seeds(seed, p.validation_seeds, p.confirmation_seeds)
    base = EngineSettings(
        validation_seeds=validation_seeds,
        screen_seeds=min(p.screen_seeds, p.validation_seeds),
        rung_epochs=rung_epochs(epochs, p.eta),
        eta=p.eta,
        screen=0,
        correction=p.correction,
        significance=p.significance,
        combination_max_steps=3,
        exploitation_batch=p.exploitation_batch,
        stall_batches=p.stall_batches,
        search_rounds=p.search_rounds,
        confirm_seeds=confirm_seeds,
        patience=p.early_stopping_patience,
        budget_te=round(budget_te, 3),
        te_gpu_hours=te_gpu_hours,
        shares={},
        seed=seed,
        trial_overhead_te=round(overhead_te, 4),
    )
    probe = float(p.validation_seeds)
    confirm = confirmation_cost(p.confirmation_seeds, headroom_te)
    rest = budget_te - probe - confirm
    smallest = probe + confirm + screen_cost(pool_costs, 1, base, epochs)
    if not pool_costs or rest < screen_cost(pool_costs, 1, base, epochs):
        need = smallest * te_gpu_hours
        raise UsageError(
            f"the budget is too small: a campaign needs about {smallest:.1f} full baseline "
            f"trials (the probe, one hypothesis screened, and a {p.confirmation_seeds}-seed "
            f"confirmation) = {need:.3g} GPU-h expected; raise --budget to at least that, "
            "or lower [planner] validation_seeds / confirmation_seeds"
        )
    n = 1
    while n < min(p.max_hypotheses, len(pool_costs)) and screen_cost(
        pool_costs, n + 1, base, epochs
    ) <= max(0.5 * rest, screen_cost(pool_costs, 1, base, epochs)):
        n += 1
    validation = screen_cost(pool_costs, n, base, epochs)
    # at most its steps x (a combination per remaining winner) x the validation seeds
    steps = base.combination_max_steps * max(1, math.ceil(n / base.eta))
    combination = max(0.0, min(rest - validation, rest / 6, steps * p.validation_seeds))
    exploitation = max(0.0, rest - validation - combination)
    shares = {
        "probe": probe,
        "validation": round(validation, 3),
        "combination": round(combination, 3),
        "exploitation": round(exploitation, 3),
        "confirmation": round(confirm, 3),
    }
    return base.model_copy(update={"screen": n, "shares": shares})


def phase_plans(
    engine: EngineSettings, *, gpus: int, limit_min: float, safety: float
) -> list[PhasePlan]:
    """Per phase: expected and worst-case cost, as the plan shows them."""
    te_h = engine.te_gpu_hours
    v = len(engine.validation_seeds)
    specs: list[tuple[Literal["validation", "combination", "exploitation"], str, int, float]] = [
        (
            "validation",
            f"probe: the baseline on {v} seeds at full fidelity (its learning curve is the "
            f"training profile); then the top {engine.screen} hypotheses of the ranked pool "
            f"(re-ranked with the training profile), "
            + (
                f"stopped at epoch {', '.join(map(str, engine.rung_epochs))} on "
                f"{engine.screen_seeds} seed(s), the best 1/{engine.eta} continued to the full "
                f"horizon on {v} seeds"
                if engine.rung_epochs
                else f"at full fidelity on {v} seeds (the horizon is too short for rungs)"
            )
            + "; gate: one-sided paired "
            f"t-tests, {engine.correction.upper()} at {engine.significance:g} over every "
            "hypothesis screened; a diverged seed fails its hypothesis",
            v + engine.screen * (engine.screen_seeds + v),
            engine.shares["probe"] + engine.shares["validation"],
        ),
        (
            "combination",
            f"greedy forward selection over the winners (at most {engine.combination_max_steps} "
            f"steps, {v} seeds each), an addition kept only when it beats the incumbent",
            engine.combination_max_steps * v * 2,
            engine.shares["combination"],
        ),
        (
            "exploitation",
            f"model-based search (Optuna TPE) around the best configuration in batches of "
            f"{engine.exploitation_batch}, continuous knobs included, trials pruned on their "
            f"streamed curves, until its share is spent or {engine.stall_batches} batches bring "
            f"nothing better; then the best candidate and the baseline on "
            f"{len(engine.confirm_seeds)} fresh paired seeds at full fidelity",
            int(engine.shares["exploitation"]) + 2 * len(engine.confirm_seeds),
            engine.shares["exploitation"] + engine.shares["confirmation"],
        ),
    ]
    return [
        PhasePlan(
            phase=name,
            rule=rule,
            max_trials=n,
            trial_equivalents=round(te, 3),
            estimated_gpu_hours=round(te * te_h, 6),
            reserved_gpu_hours=round(te * te_h * safety, 6),
            time_limit_min=limit_min,
            gpus_per_trial=gpus,
        )
        for name, rule, n, te in specs
    ]


# Start-up allowance of one trial on each backend (seconds): process start, imports and data
# loading. The local backend forks trials from a runner that has imported the trainer already.
STARTUP_S = {"local": 3.0, "slurm": 60.0}
# ... and what it is expected to take, which a trial's allocation is charged beyond the
# trainer's own device time: a forked local trial starts in well under a second (data
# memory-mapped), a Slurm task pays the interpreter, imports and the job's own start.
EXPECTED_START_S = {"local": 0.5, "slurm": 20.0}
# What every trial pays whatever its length (start, data loading, the final evaluations): on 2
# CPU cores a local trial stopped after one epoch of three costs about 0.7 of a full one.
TRIAL_FIXED_S = {"local": 1.0, "slurm": 30.0}
# What a scheduler lets a trial run past its limit (local: the runner's kill grace and polls;
# Slurm: rounding to whole minutes and OverTimeLimit, typically), for planning only: the
# campaign reserves what its scheduler reports.
OVERRUN_S = {"local": 7.0, "slurm": 60.0}
FLOOR_MIN = {"local": 0.1, "slurm": 1.0}


def limit_policy(settings: Settings) -> cost_model.LimitPolicy:
    backend = settings.local if settings.backend == "local" else settings.slurm
    return cost_model.LimitPolicy(
        startup_s=STARTUP_S[settings.backend],
        floor_min=FLOOR_MIN[settings.backend],
        cap_min=float(backend.time_limit_min),
    )


def gpus_per_trial(settings: Settings) -> int:
    return (
        settings.local.gpus_per_trial
        if settings.backend == "local"
        else settings.slurm.gpus_per_trial
    )


def hypothesis_of(candidate: Any, family: str) -> Hypothesis:
    """A knowledge-base candidate as a campaign hypothesis."""
    source = {"workspace": "workspace_kb", "history": "insights_history"}.get(
        candidate.source, "research_kb"
    )
    return Hypothesis(
        title=candidate.title,
        rationale=candidate.rationale,
        source=source,
        delta=dict(candidate.delta),
        model_family=family,
        strategy=candidate.strategy_id,
        level=candidate.level,
        category=candidate.category,
        trigger=candidate.trigger,
        reference=candidate.reference,
        cost=candidate.cost,
        prior_mean=candidate.prior_mean,
        prior_sd=candidate.prior_sd,
        search={k: v.model_dump() for k, v in candidate.search.items()},
    )


def build_plan(
    *,
    campaign_id: str,
    created_at: str,
    goal: str,
    family: str,
    dataset: str,
    data: dict[str, Any],
    data_profile: dict[str, Any],
    fingerprint: DataFingerprint | None,
    budget_gpu_hours: float,
    settings: Settings,
    profile_name: str,
    metric: str,
    baseline: dict[str, Any],
    candidates: list[Any],
    dropped: list[Any],
    knowledge: list[dict[str, Any]],
    history: list[HistoryRow],
    cost: cost_model.CostModel,
    runbooks: list[Runbook] | None = None,
    seed: int = 0,
) -> Plan:
    """Rank the pool, fit the engine to the budget, and describe every phase. Pure."""
    from rea_cli.planner.profile import traits as traits_of
    from rea_cli.planner.ranking import rank_numbers

    if metric not in METRIC_DIRECTION:
        raise UsageError(f"unknown metric {metric!r}; choose one of: auc, ne, logloss")
    traits = traits_of(data_profile)
    pool: list[tuple[Hypothesis, RankNumbers, str]] = []
    for c in candidates:
        h = hypothesis_of(c, family)
        numbers = rank_numbers(
            prior_mean=h.prior_mean,
            prior_sd=h.prior_sd,
            cost=h.cost,
            strategy=h.strategy,
            family=family,
            traits=traits,
            history=history,
        )
        if numbers.history_n:
            h.source = "insights_history"
        pool.append((h, numbers, c.hypothesis_id))
    pool.sort(key=lambda item: (-item[1].score, item[2]))
    if not pool:
        raise UsageError(
            f"no hypothesis of the knowledge base applies to model {family!r} on this data; "
            "add your own in the workspace's knowledge/ folder (docs/knowledge.md)"
        )
    epochs = int(baseline["train"]["epochs"])
    n_train = int(data_profile.get("n_train") or data_profile.get("n_rows") or 0)
    device_s = cost_model.trial_seconds(cost, n_train, epochs)
    policy = limit_policy(settings)
    gpus = gpus_per_trial(settings)
    # what one baseline trial is expected to be charged (the allowance is for its limit)
    te_s = device_s + EXPECTED_START_S[settings.backend]
    te_gpu_hours = te_s / 3600.0 * max(gpus, 1)
    limit = cost_model.time_limit_min(device_s, cost, policy)
    engine = fit_engine(
        settings=settings,
        budget_te=budget_gpu_hours / te_gpu_hours,
        te_gpu_hours=te_gpu_hours,
        epochs=epochs,
        pool_costs=[h.cost for h, _, _ in pool],
        seed=seed,
        overhead_te=min(0.5, TRIAL_FIXED_S[settings.backend] / te_s),
        # one trial's worst case (its limit and the scheduler's overrun) beyond its expectation
        headroom_te=max(0.0, (limit * 60.0 + OVERRUN_S[settings.backend]) / te_s - 1.0),
    )
    hypotheses = {
        BASELINE: Hypothesis(
            title="Baseline",
            rationale="The unchanged model config.",
            source="baseline",
            model_family=family,
        )
    }
    hypotheses.update({hid: h for h, _, hid in pool})
    return Plan(
        campaign_id=campaign_id,
        created_at=created_at,
        goal=goal or f"improve {metric} of {family} on {dataset}",
        model_family=family,
        dataset=dataset,
        data=data,
        data_fingerprint=fingerprint,
        data_profile=data_profile,
        traits=traits,
        metric=metric,
        direction=METRIC_DIRECTION[metric],
        backend=settings.backend,
        budget_gpu_hours=budget_gpu_hours,
        profile=profile_name,
        baseline=baseline,
        hypotheses=hypotheses,
        ranking=[RankedHypothesis(hypothesis_id=hid, numbers=n) for _, n, hid in pool],
        dropped=[
            DroppedHypothesis(
                hypothesis_id=d.hypothesis_id,
                strategy=d.strategy_id,
                source=d.source,
                reason=d.reason,
            )
            for d in dropped
        ],
        knowledge=knowledge,
        history=[row.__dict__ for row in history],
        cost={"seconds_per_sample": cost.seconds_per_sample, "source": cost.source, "n": cost.n},
        runbooks=list(runbooks or []),
        engine=engine,
        phases=phase_plans(engine, gpus=gpus, limit_min=limit, safety=cost.safety),
    )
