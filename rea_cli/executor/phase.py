"""Submitting a round of trials: specs, held array, chained wake-up, release. Idempotent.

A round goes through persisted steps, so a crash at any line is finished by the next resume
without submitting anything twice:

1. intent: trial specs written, trial records and the round saved as "submitting";
2. array: held array(s) submitted (stray held jobs of an earlier crashed try, found by job name,
   are cancelled first: being held, they never ran); ids saved;
3. wake-up: chained with afterany on every task (adopted by name if a crashed try submitted it);
4. release: the held tasks may start; round saved as "released".

Holding the array until the wake-up is chained means no task can end before its wake-up exists,
and the wake-up never depends on a purged job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from rea_cli.campaign.journal import now_iso
from rea_cli.campaign.model import Campaign, JobRecord, PhaseRecord, Round, TrialRecord
from rea_cli.campaign.store import CampaignStore
from rea_cli.errors import RefusedError
from rea_cli.executor import backends, budget
from rea_cli.executor.scheduler import JobState, Scheduler, TaskSpec, job_name
from rea_cli.faults import crash_point
from rea_cli.fsutil import write_json_atomic
from rea_cli.planner.gates import TrialDef
from rea_cli.planner.plan import Plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DryRun:
    """What submitting a round would do, without doing it."""

    phase: str
    job_name: str
    tasks: list[TaskSpec]
    resources: dict[str, Any]
    parallelism: int
    wakeup_argv: list[str]
    reserved_gpu_hours: float
    estimated_gpu_hours: float
    scripts: list[tuple[str, str]]  # (title, text): what the backend would submit


def trial_config(
    plan: Plan, campaign: Campaign, trial: TrialDef, overrides: dict[str, Any]
) -> dict[str, Any]:
    from ranking_models.config import apply_delta

    hyp = campaign.hypotheses.get(trial.hypothesis_id) or plan.hypotheses[trial.hypothesis_id]
    config = apply_delta(plan.baseline, hyp.delta)
    config = apply_delta(config, trial.fidelity)
    return apply_delta(config, overrides) if overrides else config


def write_spec(
    store: CampaignStore,
    plan: Plan,
    campaign: Campaign,
    phase: str,
    trial: TrialDef,
    overrides: dict[str, Any] | None = None,
) -> None:
    spec = {
        "schema": 1,
        "campaign_id": campaign.campaign_id,
        "trial_id": trial.trial_id,
        "hypothesis_id": trial.hypothesis_id,
        "phase": phase,
        "seed": trial.seed,
        "config": trial_config(plan, campaign, trial, overrides or {}),
        "data": plan.data,
        "checkpoint_dir": str(store.trial_dir(trial.trial_id) / "checkpoint"),
        "attempts_dir": str(store.attempts_dir(trial.trial_id)),
    }
    write_json_atomic(store.spec_path(trial.trial_id), spec)


def _tasks(store: CampaignStore, trial_ids: list[str], env: dict[str, str]) -> list[TaskSpec]:
    return [
        TaskSpec(
            argv=backends.trial_argv(store.spec_path(tid)),
            workdir=store.trial_dir(tid),
            log_dir=store.trial_dir(tid) / "logs",
            env=env,
        )
        for tid in trial_ids
    ]


def dry_run(store: CampaignStore, plan: Plan, trials: list[TrialDef], phase: str) -> DryRun:
    settings = store.ws.settings
    pp = plan.phase(phase)
    res = backends.resources(settings, pp.time_limit_min, pp.gpus_per_trial)
    tasks = _tasks(store, [t.trial_id for t in trials], backends.trial_env(settings))
    scripts: list[tuple[str, str]] = []
    if settings.backend == "slurm":
        from rea_cli.executor.slurm.preview import preview

        scripts = preview(
            tasks,
            job_name=job_name(store.campaign_id, phase, 1),
            resources=res,
            parallelism=backends.parallelism(settings),
            wakeup_name=job_name(store.campaign_id, phase, 1, wakeup=True),
            wakeup_argv=backends.wakeup_argv(store.ws, store.campaign_id),
            log_dir=store.phase_dir(phase) / "logs",
            preamble=backends.preamble(store.ws, settings),
        )
    return DryRun(
        phase=phase,
        job_name=job_name(store.campaign_id, phase, 1),
        tasks=tasks,
        scripts=scripts,
        resources={k: v for k, v in vars(res).items() if v not in (None, {}, ())},
        parallelism=backends.parallelism(settings),
        wakeup_argv=backends.wakeup_argv(store.ws, store.campaign_id),
        reserved_gpu_hours=len(trials) * res.gpu_hours_reserved,
        estimated_gpu_hours=pp.estimated_gpu_hours * len(trials) / max(pp.max_trials, 1),
    )


def record_round(
    store: CampaignStore,
    plan: Plan,
    campaign: Campaign,
    phase: str,
    trials: list[TrialDef],
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Round:
    """Step 1 (intent): specs, trial records and the round, after the budget check."""
    pp = plan.phase(phase)
    rec = campaign.phases.setdefault(phase, PhaseRecord())
    number = len(rec.rounds) + 1
    new_hours = len(trials) * pp.time_limit_min / 60.0 * pp.gpus_per_trial
    verdict = budget.check(campaign, new_hours)
    if not verdict.ok:
        raise RefusedError(
            f"budget guard: submitting {len(trials)} trials of {phase} would exceed the approved "
            f"budget ({verdict.message}); raise it with a new plan or cancel the campaign"
        )
    for t in trials:
        write_spec(store, plan, campaign, phase, t, (overrides or {}).get(t.trial_id))
        existing = campaign.trials.get(t.trial_id)
        if existing is None:
            campaign.trials[t.trial_id] = TrialRecord(
                phase=phase, hypothesis_id=t.hypothesis_id, seed=t.seed, fidelity=t.fidelity
            )
        else:
            existing.status = "pending"
    rnd = Round(round=number, trial_ids=[t.trial_id for t in trials])
    rec.rounds.append(rnd)
    rec.status = "submitted"
    campaign.phase = phase
    store.save(campaign)
    store.event("round_intent", phase=phase, round=number, trials=len(trials))
    return rnd


def complete_round(
    store: CampaignStore, plan: Plan, campaign: Campaign, scheduler: Scheduler, phase: str
) -> Round:
    """Steps 2-4 for the last round of `phase`, from wherever an earlier try stopped."""
    settings = store.ws.settings
    pp = plan.phase(phase)
    rnd = campaign.phases[phase].rounds[-1]
    name = job_name(store.campaign_id, phase, rnd.round)
    wake_name = job_name(store.campaign_id, phase, rnd.round, wakeup=True)
    logs = store.phase_dir(phase) / "logs"
    if not rnd.array_job_ids:
        _cancel_strays(scheduler, name)
        crash_point("submit_array")
        res = backends.resources(settings, pp.time_limit_min, pp.gpus_per_trial)
        ids = scheduler.submit_array(
            _tasks(store, rnd.trial_ids, backends.trial_env(settings)),
            job_name=name,
            resources=res,
            parallelism=backends.parallelism(settings),
            hold=True,
        )
        crash_point("array_submitted")
        rnd.array_job_ids = ids
        for tid, jid in zip(rnd.trial_ids, ids, strict=True):
            campaign.trials[tid].jobs.append(
                JobRecord(
                    job_id=jid,
                    round=rnd.round,
                    state=JobState.HELD.value,
                    gpus=pp.gpus_per_trial,
                    time_limit_min=pp.time_limit_min,
                )
            )
            campaign.trials[tid].status = "submitted"
        budget.refresh(campaign)
        store.save(campaign)
    if rnd.wakeup_job_id is None:
        found = [
            j for j in scheduler.find(wake_name) if j.name == wake_name and not j.state.is_terminal
        ]
        if found:
            rnd.wakeup_job_id = found[0].job_id
        else:
            rnd.wakeup_job_id = scheduler.submit_wakeup(
                rnd.array_job_ids,
                backends.wakeup_argv(store.ws, store.campaign_id),
                job_name=wake_name,
                log_dir=logs,
            )
            crash_point("wakeup_submitted")
        store.save(campaign)
    if rnd.status != "released":
        scheduler.release(rnd.array_job_ids)
        crash_point("released")
        rnd.status = "released"
        rnd.submitted_at = now_iso()
        store.save(campaign)
        store.event(
            "phase_submitted",
            phase=phase,
            round=rnd.round,
            array_job_ids=rnd.array_job_ids,
            wakeup_job_id=rnd.wakeup_job_id,
        )
    return rnd


def _cancel_strays(scheduler: Scheduler, name: str) -> None:
    strays = [j.job_id for j in scheduler.find(name) if j.name == name and not j.state.is_terminal]
    if strays:
        log.warning("cancelling %d held job(s) of an interrupted submission %s", len(strays), name)
        scheduler.cancel(strays)


def submit_round(
    store: CampaignStore,
    plan: Plan,
    campaign: Campaign,
    scheduler: Scheduler,
    phase: str,
    trials: list[TrialDef],
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Round:
    record_round(store, plan, campaign, phase, trials, overrides)
    crash_point("round_recorded")
    return complete_round(store, plan, campaign, scheduler, phase)
