"""From the planner's trial definitions to what a round submits: specs and a RoundPlan."""

from __future__ import annotations

from typing import Any

from ranking_models.contracts import TrialSpec
from rea_cli.campaign.model import Campaign
from rea_cli.campaign.store import CampaignStore
from rea_cli.executor.scheduler import Scheduler
from rea_cli.executor.submission import RoundPlan
from rea_cli.planner.gates import TrialDef
from rea_cli.planner.plan import Plan


def trial_config(
    plan: Plan, campaign: Campaign, trial: TrialDef, overrides: dict[str, Any]
) -> dict[str, Any]:
    """The trial's whole config: baseline + the hypothesis's delta + fidelity + overrides."""
    from ranking_models.config import apply_delta

    hyp = campaign.hypotheses.get(trial.hypothesis_id) or plan.hypotheses[trial.hypothesis_id]
    config = apply_delta(plan.baseline, hyp.delta)
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
        config=trial_config(plan, campaign, trial, overrides or {}),
        data=plan.data,
        checkpoint_dir=str(store.trial_dir(trial.trial_id) / "checkpoint"),
        attempts_dir=str(store.attempts_dir(trial.trial_id)),
    )


def round_plan(
    store: CampaignStore,
    plan: Plan,
    campaign: Campaign,
    scheduler: Scheduler,
    phase: str,
    trials: list[TrialDef],
    overrides: dict[str, dict[str, Any]] | None = None,
) -> RoundPlan:
    pp = plan.phase(phase)
    limit = pp.time_limit_min
    return RoundPlan(
        phase=phase,
        specs=[
            trial_spec(store, plan, campaign, phase, t, (overrides or {}).get(t.trial_id))
            for t in trials
        ],
        time_limit_min=limit,
        gpus_per_trial=pp.gpus_per_trial,
        fidelity={t.trial_id: dict(t.fidelity) for t in trials},
        overrun_min=max(0.0, scheduler.enforced_limit_min(limit) - limit),
    )
