"""Submitting a round of trials: specs, held array, chained wake-up, release. Idempotent.

A round goes through persisted steps, so a crash at any line is finished by the next resume
without submitting anything twice:

1. intent: trial specs written, trial records and the round saved as "submitting" (after the
   budget check);
2. array: held array(s) submitted (stray held jobs of an earlier crashed try, found by job name,
   are cancelled first: being held, they never ran); ids saved;
3. wake-up: chained with afterany on every task (adopted by name if a crashed try submitted it);
4. release: the held tasks may start; round saved as "released".

Holding the array until the wake-up is chained means no task can end before its wake-up exists,
and the wake-up never depends on a purged job. What a round sends is one SubmissionRequest built
from the workspace settings and the round record alone (`build_request`): the dry run renders the
same object, and a fresh process rebuilds exactly the same request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ranking_models.contracts import TrialSpec
from rea_cli import budget
from rea_cli.campaign.journal import now_iso
from rea_cli.campaign.model import Campaign, JobRecord, PhaseRecord, Round, TrialRecord
from rea_cli.campaign.state import PhaseStatus, RoundStatus, TrialStatus
from rea_cli.campaign.store import CampaignStore
from rea_cli.errors import RefusedError
from rea_cli.executor import backends
from rea_cli.executor.scheduler import (
    ArrayRequest,
    JobState,
    Scheduler,
    SubmissionRequest,
    TaskSpec,
    WakeupRequest,
    job_name,
    workspace_tag,
)
from rea_cli.faults import crash_point
from rea_cli.fsutil import write_json_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundPlan:
    """What one round runs: a spec per trial, with the resources every task of it gets."""

    phase: str
    specs: Sequence[TrialSpec]
    time_limit_min: float
    gpus_per_trial: int
    fidelity: dict[str, dict[str, object]]  # trial id -> fidelity delta (kept on the record)
    overrun_min: float = 0.0  # what the scheduler lets a task run past its limit
    kind: str = ""  # what the round is for (probe, rung, batch, confirmation, retry, ...)
    mem_gb: float | None = None  # memory per task raised by a runbook (None: the settings')

    @property
    def reserved_gpu_hours(self) -> float:
        limit = budget.effective_limit_min(self.time_limit_min, self.overrun_min)
        return budget.reservation_hours(len(self.specs), limit, self.gpus_per_trial)


def build_request(
    store: CampaignStore, phase: str, rnd: Round, *, hold: bool = True
) -> SubmissionRequest:
    """The array and wake-up of round `rnd`, from the settings and the round record only."""
    ws = store.ws
    settings = ws.settings
    tag = workspace_tag(ws.root)
    env = backends.trial_env(settings)
    tasks = [
        TaskSpec(
            argv=backends.trial_argv(store.spec_path(tid)),
            workdir=store.trial_dir(tid),
            log_dir=store.trial_dir(tid) / "logs",
            env=env,
        )
        for tid in rnd.trial_ids
    ]
    pre = backends.preamble(ws, settings)
    array = ArrayRequest(
        job_name=job_name(tag, store.campaign_id, phase, rnd.round),
        tasks=tasks,
        resources=backends.trial_resources(settings, rnd.time_limit_min, rnd.gpus, rnd.mem_gb),
        parallelism=backends.parallelism(settings),
        workdir=store.phase_dir(phase),
        hold=hold,
        preamble=pre,
    )
    logs = store.phase_dir(phase) / "logs"
    wakeup = WakeupRequest(
        job_name=job_name(tag, store.campaign_id, phase, rnd.round, wakeup=True),
        argv=backends.wakeup_argv(ws, store.campaign_id),
        resources=backends.wakeup_resources(settings),
        log_dir=logs,
        workdir=logs,
        preamble=pre,
    )
    return SubmissionRequest(array=array, wakeup=wakeup)


def next_round(campaign: Campaign, plan: RoundPlan) -> Round:
    """The round record `plan` would get (not yet saved)."""
    rec = campaign.phases.get(plan.phase) or PhaseRecord()
    return Round(
        round=len(rec.rounds) + 1,
        kind=plan.kind,
        trial_ids=[s.trial_id for s in plan.specs],
        time_limit_min=plan.time_limit_min,
        overrun_min=plan.overrun_min,
        gpus=plan.gpus_per_trial,
        mem_gb=plan.mem_gb,
    )


def record_round(store: CampaignStore, campaign: Campaign, plan: RoundPlan) -> Round:
    """Step 1 (intent): budget check, specs, trial records and the round."""
    verdict = budget.check(campaign, plan.reserved_gpu_hours)
    if not verdict.ok:
        raise RefusedError(
            f"budget guard: submitting {len(plan.specs)} trials of {plan.phase} would exceed the "
            f"approved budget ({verdict.message}); raise it with a new plan or cancel the campaign"
        )
    for spec in plan.specs:
        write_json_atomic(store.spec_path(spec.trial_id), spec.dump())
        existing = campaign.trials.get(spec.trial_id)
        if existing is None:
            campaign.trials[spec.trial_id] = TrialRecord(
                phase=plan.phase,
                hypothesis_id=spec.hypothesis_id,
                seed=spec.seed,
                fidelity=dict(plan.fidelity.get(spec.trial_id, {})),
                prune=spec.prune,
            )
        else:
            existing.set_status(TrialStatus.PENDING)
    rnd = next_round(campaign, plan)
    rec = campaign.phases.setdefault(plan.phase, PhaseRecord())
    rec.rounds.append(rnd)
    rec.set_status(PhaseStatus.SUBMITTED)
    campaign.phase = plan.phase
    store.save(campaign)
    store.event("round_intent", phase=plan.phase, round=rnd.round, trials=len(plan.specs))
    return rnd


def complete_round(
    store: CampaignStore, campaign: Campaign, scheduler: Scheduler, phase: str
) -> Round:
    """Steps 2-4 for the last round of `phase`, from wherever an earlier try stopped."""
    rnd = campaign.phases[phase].rounds[-1]
    request = build_request(store, phase, rnd)
    if not rnd.array_job_ids:
        # where the scheduler starts the jobs: it must exist before they start
        request.array.workdir.mkdir(parents=True, exist_ok=True)
        request.wakeup.log_dir.mkdir(parents=True, exist_ok=True)
        _cancel_strays(scheduler, request.array.job_name)
        crash_point("submit_array")
        ids = scheduler.submit_array(request.array)
        crash_point("array_submitted")
        rnd.array_job_ids = ids
        for tid, jid in zip(rnd.trial_ids, ids, strict=True):
            trial = campaign.trials[tid]
            trial.jobs.append(
                JobRecord(
                    job_id=jid,
                    round=rnd.round,
                    state=JobState.HELD,
                    gpus=rnd.gpus,
                    time_limit_min=budget.effective_limit_min(rnd.time_limit_min, rnd.overrun_min),
                )
            )
            trial.set_status(TrialStatus.SUBMITTED)
        budget.refresh(campaign)
        store.save(campaign)
    if rnd.wakeup_job_id is None:
        wake = request.wakeup.job_name
        found = [j for j in scheduler.find(wake) if j.name == wake and not j.state.has_ended]
        if found:
            rnd.wakeup_job_id = found[0].job_id
        else:
            rnd.wakeup_job_id = scheduler.submit_wakeup(request.wakeup, rnd.array_job_ids)
            crash_point("wakeup_submitted")
        store.save(campaign)
    if rnd.status is not RoundStatus.RELEASED:
        scheduler.release(rnd.array_job_ids)
        crash_point("released")
        rnd.set_status(RoundStatus.RELEASED)
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


def resubmit_wakeup(
    store: CampaignStore, scheduler: Scheduler, phase: str, rnd: Round, after: Sequence[str]
) -> str:
    """A new wake-up for a released round whose wake-up is gone (same request as the first)."""
    request = build_request(store, phase, rnd)
    return scheduler.submit_wakeup(request.wakeup, after)


def _cancel_strays(scheduler: Scheduler, name: str) -> None:
    """Held jobs of an interrupted submission of THIS round (exact name: workspace included)."""
    strays = [j.job_id for j in scheduler.find(name) if j.name == name and j.state is JobState.HELD]
    if strays:
        log.warning("cancelling %d held job(s) of an interrupted submission %s", len(strays), name)
        scheduler.cancel(strays)


def submit_round(
    store: CampaignStore, campaign: Campaign, scheduler: Scheduler, plan: RoundPlan
) -> Round:
    record_round(store, campaign, plan)
    crash_point("round_recorded")
    return complete_round(store, campaign, scheduler, plan.phase)
