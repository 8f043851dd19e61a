"""From the engine's trial definitions to what a round submits: specs, time limits, a RoundPlan."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from ranking_models.contracts import TrialSpec
from rea_cli.campaign.model import Campaign, Hypothesis, TrialRecord
from rea_cli.campaign.state import TrialStatus
from rea_cli.campaign.store import CampaignStore
from rea_cli.executor.scheduler import JobState, Scheduler
from rea_cli.executor.submission import RoundPlan
from rea_cli.planner import cost as cost_model
from rea_cli.planner.engine import TrialDef
from rea_cli.planner.plan import Plan, gpus_per_trial, limit_policy


def hypothesis(plan: Plan, campaign: Campaign, hypothesis_id: str) -> Hypothesis:
    return campaign.hypotheses.get(hypothesis_id) or plan.hypotheses[hypothesis_id]


def trial_config(
    plan: Plan, campaign: Campaign, trial: TrialDef, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The trial's whole config: baseline + the hypothesis's delta + fidelity + overrides."""
    from ranking_models.config import apply_delta

    config = apply_delta(plan.baseline, hypothesis(plan, campaign, trial.hypothesis_id).delta)
    config = apply_delta(config, trial.fidelity)
    return apply_delta(config, overrides) if overrides else config


def trial_spec(
    store: CampaignStore,
    plan: Plan,
    campaign: Campaign,
    phase: str,
    trial: TrialDef,
    overrides: dict[str, Any] | None = None,
) -> TrialSpec:
    return TrialSpec(
        campaign_id=campaign.campaign_id,
        trial_id=trial.trial_id,
        hypothesis_id=trial.hypothesis_id,
        phase=phase,
        seed=trial.seed,
        config=trial_config(plan, campaign, trial, overrides),
        data=plan.data,
        # trials of one lineage (a hypothesis and seed) continue each other's checkpoints
        checkpoint_dir=str(store.dir / "checkpoints" / trial.lineage),
        attempts_dir=str(store.attempts_dir(trial.trial_id)),
        prune=trial.prune,
        data_fingerprint=plan.data_fingerprint,
    )


def learned_cost(plan: Plan, campaign: Campaign) -> cost_model.CostModel:
    """Seconds per sample measured on this campaign's finished trials, else the plan's."""
    measured = [
        (t.device_time_s, t.samples_seen)
        for t in campaign.trials.values()
        if t.status is TrialStatus.SUCCEEDED and t.reused_from is None and t.samples_seen
    ]
    if measured:
        return cost_model.learned(plan.model_family, measured, "measured")
    return plan.cost_model()


def expected_seconds(plan: Plan, campaign: Campaign, trial: TrialDef) -> float:
    """Expected device seconds of a trial: what full-fidelity runs of its hypothesis took (the
    median; a confirmation repeats a measured config on other seeds), else its cost
    multiplier x one full baseline trial (a multiplier prices the training length only: a
    wider model or more feature fields cost more per sample)."""
    if not trial.fidelity:
        measured = [
            _run_seconds(t)
            for t in campaign.trials.values()
            if t.hypothesis_id == trial.hypothesis_id
            and not t.fidelity
            and t.status is TrialStatus.SUCCEEDED
            and t.reused_from is None
            and t.stopped != "pruned"
            and t.device_time_s > 0
        ]
        if measured:
            return statistics.median(measured)
    n_train = int(plan.data_profile.get("n_train") or plan.data_profile.get("n_rows") or 0)
    epochs = int(plan.baseline["train"]["epochs"])
    full = cost_model.trial_seconds(learned_cost(plan, campaign), n_train, epochs)
    return full * max(trial.cost, 0.05)


def _run_seconds(t: TrialRecord) -> float:
    """What one run of a trial took: the trainer's device time when it ran in one attempt;
    after a retry (which continued the checkpoint, and whose killed attempt left no device
    time) the allocation of all its jobs, an upper bound."""
    if len(t.jobs) <= 1:
        return t.device_time_s
    return max(t.device_time_s, sum(j.gpu_seconds / max(j.gpus, 1) for j in t.jobs))


def timeout_scale(campaign: Campaign, trial_id: str) -> float:
    """2 ** the number of times the trial's jobs reached their time limit."""
    record = campaign.trials.get(trial_id)
    if record is None:
        return 1.0
    timeouts = [
        j for j in record.jobs if j.state is JobState.TIMEOUT or j.failure_kind == "timeout"
    ]
    return 2.0 ** len(timeouts)


def round_plan(
    store: CampaignStore,
    plan: Plan,
    campaign: Campaign,
    scheduler: Scheduler,
    phase: str,
    trials: Sequence[TrialDef],
    overrides: dict[str, dict[str, Any]] | None = None,
    kind: str = "",
    mem_gb: float | None = None,
) -> RoundPlan:
    """Specs and one time limit for the round (the longest expected trial, with the backend's
    safety margin and start-up allowance)."""
    settings = store.ws.settings
    cost = learned_cost(plan, campaign)
    longest = max((expected_seconds(plan, campaign, t) for t in trials), default=0.0)
    policy = limit_policy(settings)
    limit = cost_model.time_limit_min(longest, cost, policy)
    # a trial that reached its limit before gets twice the limit per timeout: the estimate
    # missed what this config costs (feature processing, a slow first epoch), and the same
    # limit would only time out again
    scale = max((timeout_scale(campaign, t.trial_id) for t in trials), default=1.0)
    if scale > 1.0:
        limit = round(min(policy.cap_min, max(limit, limit * scale)), 3)
    return RoundPlan(
        phase=phase,
        specs=[
            trial_spec(store, plan, campaign, phase, t, (overrides or {}).get(t.trial_id))
            for t in trials
        ],
        time_limit_min=limit,
        gpus_per_trial=gpus_per_trial(settings),
        fidelity={t.trial_id: dict(t.fidelity) for t in trials},
        overrun_min=max(0.0, scheduler.enforced_limit_min(limit) - limit),
        kind=kind,
        mem_gb=mem_gb,
    )
