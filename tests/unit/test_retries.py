"""Retries of failed trials: a timed-out trial's retry gets twice the limit per timeout (capped),
and a retry the budget cannot hold is given up (retry_dropped) while the campaign goes on,
instead of pausing it.

Campaigns are built by the real writers (CampaignBuilder) or planned, approved and stepped
through rea's own entry points; the scheduler is an in-process one that records what it is sent
and reports every job ended, with what the trainer would have left in its attempt folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ranking_models.contracts import AttemptResult, AttemptStart, EpochRecord
from rea_cli.app.lifecycle import approve_campaign
from rea_cli.app.planning import plan_campaign
from rea_cli.app.resume import load_plan, resume_campaign, start_campaign
from rea_cli.app.trials import round_plan
from rea_cli.campaign.state import CampaignState, TrialStatus
from rea_cli.campaign.store import CampaignStore
from rea_cli.executor.scheduler import (
    ArrayRequest,
    JobInfo,
    JobState,
    Resources,
    Scheduler,
    SubmissionRequest,
    WakeupRequest,
)
from rea_cli.planner.engine import TrialDef
from rea_cli.planner.engine.common import lineage
from rea_cli.planner.plan import BASELINE, limit_policy
from rea_cli.workspace import init_workspace
from tests.insights.insights_builder import CampaignBuilder

CID = "c20261129-re01"
TIMED_OUT = "validation-baseline-s1"  # the probe's second seed reaches its time limit
METRICS = {"auc": 0.76, "logloss": 0.5, "ne": 0.8, "ne_eval": 0.8, "calibration": 1.0}


@dataclass
class _Job:
    name: str
    trial_id: str | None  # None: a wake-up
    limit_min: float


@dataclass
class RecordingScheduler:
    """Records every array it is sent; asked for states, every job has ended after running as
    long as this scheduler lets it (its limit plus `overrun_min`): the trials in `time_out`
    TIMEOUT, the others COMPLETED with the result.json the trainer writes."""

    time_out: set[str]
    overrun_min: float = 0.0
    name: str = "recording"
    jobs: dict[str, _Job] = field(default_factory=dict)
    arrays: list[ArrayRequest] = field(default_factory=list)

    def submit_array(self, request: ArrayRequest) -> list[str]:
        self.arrays.append(request)
        ids = []
        for task in request.tasks:
            jid = str(len(self.jobs) + 1)
            tid = task.workdir.name
            self.jobs[jid] = _Job(request.job_name, tid, request.resources.time_limit_min)
            _write_attempt(task.workdir / "attempts" / jid, tid, jid, tid not in self.time_out)
            ids.append(jid)
        return ids

    def submit_wakeup(self, request: WakeupRequest, after: Sequence[str]) -> str:
        jid = str(len(self.jobs) + 1)
        self.jobs[jid] = _Job(request.job_name, None, request.resources.time_limit_min)
        return jid

    def render(self, request: SubmissionRequest) -> list[tuple[str, str]]:
        return [("array", request.array.job_name), ("wake-up", request.wakeup.job_name)]

    def enforced_limit_min(self, time_limit_min: float) -> float:
        return time_limit_min + self.overrun_min

    def max_mem_gb(self, resources: Resources) -> float | None:
        return None

    def release(self, job_ids: Sequence[str]) -> None:
        pass

    def states(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        infos = {}
        for jid in job_ids:
            job = self.jobs[jid]
            timed_out = job.trial_id in self.time_out
            infos[jid] = JobInfo(
                jid,
                job.name,
                JobState.TIMEOUT if timed_out else JobState.COMPLETED,
                exit_code=None if timed_out else 0,
                node="node1",
                elapsed_s=self.enforced_limit_min(job.limit_min) * 60.0,
            )
        return infos

    def find(self, name_prefix: str) -> list[JobInfo]:
        return []

    def cancel(self, job_ids: Sequence[str]) -> None:
        pass

    def submitted_trials(self) -> list[list[str]]:
        return [[t.workdir.name for t in a.tasks] for a in self.arrays]


def _write_attempt(folder: Path, tid: str, job_id: str, succeeded: bool) -> None:
    """What the trainer leaves: attempt.json always; result.json unless it was killed."""
    folder.mkdir(parents=True, exist_ok=True)
    start = AttemptStart(attempt=1, trial_id=tid, job_id=job_id, host="node1")
    (folder / "attempt.json").write_text(json.dumps(start.model_dump(mode="json")))
    if not succeeded:
        return
    result = AttemptResult(
        trial_id=tid,
        attempt=1,
        job_id=job_id,
        host="node1",
        status="succeeded",
        valid=METRICS,
        test=METRICS,
        epochs_completed=1,
        best_epoch=0,
        curve=[EpochRecord(epoch=0, train_loss=0.5, valid=METRICS)],
        wall_time_s=5.0,
        device_time_s=4.0,
        samples_seen=16_000,
    )
    (folder / "result.json").write_text(json.dumps(result.dump()))


def test_recording_scheduler_is_a_scheduler() -> None:
    assert isinstance(RecordingScheduler(set()), Scheduler)


# ---------------------------------------------------------------- round_plan's time limit


def test_round_limit_doubles_per_timeout_of_a_trial_and_is_capped(tmp_path: Path) -> None:
    b = CampaignBuilder(tmp_path, CID, dataset="synthetic")
    b.phase("validation")
    jobs = {
        "fresh": [],
        "failed": ["FAILED", "NODE_FAIL"],  # failed, never at its limit
        "once": ["TIMEOUT"],
        "twice": ["TIMEOUT", "FAILED", "TIMEOUT"],
        "many": ["TIMEOUT"] * 20,
    }
    defs = {}
    for seed, (tid, states) in enumerate(jobs.items()):
        b.trial(tid, BASELINE, seed)
        for k, state in enumerate(states):
            b.job(tid, f"{seed}{k}", state=state, exit_code=1)
        defs[tid] = TrialDef(tid, BASELINE, seed, {}, lineage(BASELINE, seed))
    b.write_campaign()
    sched = RecordingScheduler(set())

    def limit(*tids: str) -> float:
        trials = [defs[t] for t in tids]
        rp = round_plan(b.store, b.plan, b.campaign, sched, "validation", trials, kind="retry")
        return rp.time_limit_min

    base = limit("fresh")
    cap = limit_policy(b.ws.settings).cap_min
    assert 0 < 4 * base < cap, "the test needs room below the backend's cap"
    assert limit("failed") == base
    assert limit("once") == pytest.approx(2 * base, abs=1e-3)
    assert limit("twice") == pytest.approx(4 * base, abs=1e-3)
    assert limit("many") == cap
    # one limit per round: the most any of its trials needs
    assert limit("fresh", "once") == limit("once")
    assert limit("fresh", "failed") == base


# ---------------------------------------------------------------- the resume step's retries


def _launched(root: Path, budget_gpu_hours: float, sched: RecordingScheduler) -> CampaignStore:
    """A campaign planned, approved and launched as `rea plan/approve/launch` do, its first
    round (the baseline probe on two seeds) submitted to `sched`."""
    ws = init_workspace(root, backend="local")
    plan_campaign(
        ws,
        model="dcn_v2",
        dataset="synthetic",
        budget_gpu_hours=budget_gpu_hours,
        profile="tiny",
        campaign_id=CID,
    )
    approve_campaign(ws, CID)
    store = CampaignStore(ws, CID)
    outcome = start_campaign(store, store.load(), load_plan(store), sched, by="alice")
    assert outcome.action == "submitted", outcome
    assert sched.submitted_trials() == [["validation-baseline-s0", TIMED_OUT]]
    return store


# The scheduler lets a job run 5 minutes past its limit; every job runs that long, so the probe
# spends its whole worst case (2 x (limit + 5) min). 12 min approved holds the probe (the
# limit of a tiny trial is well under a minute) but leaves less than one retry's overrun.
OVERRUN_MIN = 5.0
TIGHT_GPU_HOURS = 0.2


def test_a_retry_the_budget_cannot_hold_is_given_up_and_the_campaign_goes_on(
    tmp_path: Path,
) -> None:
    sched = RecordingScheduler({TIMED_OUT}, overrun_min=OVERRUN_MIN)
    store = _launched(tmp_path / "ws", TIGHT_GPU_HOURS, sched)

    outcome = resume_campaign(store.ws, CID, sched)

    c = store.load()
    assert outcome.action != "paused", outcome.detail
    assert c.state is not CampaignState.PAUSED, c.pause_reason
    trial = c.trials[TIMED_OUT]
    assert trial.status is TrialStatus.FAILED
    assert len(trial.jobs) == 1, "the retry was submitted"
    job = trial.jobs[-1]
    assert job.state is JobState.TIMEOUT
    assert job.action == "give_up"
    assert job.reason is not None
    assert "the budget left cannot hold its retry's worst case" in job.reason
    dropped = [e for e in store.events() if e["event"] == "retry_dropped"]
    assert [e["trial_id"] for e in dropped] == [TIMED_OUT]
    # the engine decided with what was left: less than one trial's overrun holds nothing, so
    # it finished with what it confirmed (a proposal), never submitting the dropped retry
    assert outcome.action == "awaiting_review", outcome
    assert c.state is CampaignState.AWAITING_REVIEW
    assert c.proposal is not None
    assert len(sched.arrays) == 1
    assert c.budget.spent_gpu_hours <= TIGHT_GPU_HOURS
    done = [e for e in store.events() if e["event"] == "resume_done"]
    assert done[-1]["action"] == outcome.action


def test_a_retry_the_budget_holds_is_submitted(tmp_path: Path) -> None:
    sched = RecordingScheduler({TIMED_OUT}, overrun_min=OVERRUN_MIN)
    store = _launched(tmp_path / "ws", 4.0, sched)

    outcome = resume_campaign(store.ws, CID, sched)

    c = store.load()
    assert outcome.action == "submitted", outcome
    assert outcome.detail == "retrying 1 trial(s) of validation"
    assert c.state is CampaignState.RUNNING
    assert sched.submitted_trials()[-1] == [TIMED_OUT]
    trial = c.trials[TIMED_OUT]
    assert [j.action for j in trial.jobs] == ["retry", None]
    assert trial.jobs[-1].job_id == str(len(sched.jobs) - 1)  # the retry array's one task
    assert not any(e["event"] == "retry_dropped" for e in store.events())


# ---------------------------------------------------------------- search points


def test_a_search_point_over_its_limit_is_a_failed_point_not_retried(tmp_path: Path) -> None:
    """A search point that reaches its time limit costs more than the search's share allows:
    the study records it as failed (not retried at twice the limit, which spent the budget the
    confirmation needed). The same configuration's confirmation trial is retried as any is."""
    from rea_cli.app.resume import diagnose_failures

    b = CampaignBuilder(tmp_path, CID, dataset="synthetic")
    b.campaign.phase = "exploitation"
    b.hypothesis("search-r1-o0", source="search", delta={"model.cross_layers": 4})
    search_seed = b.plan.engine.validation_seeds[0]
    confirm_seed = b.plan.engine.confirm_seeds[0]
    for tid, seed in (("point", search_seed), ("confirm", confirm_seed)):
        b.trial(tid, "search-r1-o0", seed, phase="exploitation", fidelity={})
        b.job(tid, f"{seed}", state="TIMEOUT", exit_code=None)
        b.campaign.trials[tid].status = TrialStatus.FAILED
    b.phase("exploitation")
    b.write_campaign()

    diagnose_failures(b.store, b.campaign, b.plan)

    point, confirm = (b.campaign.trials[t].jobs[-1] for t in ("point", "confirm"))
    assert (point.runbook, point.action) == ("timeout", "give_up"), point
    assert "failed point of the search" in (point.reason or "")
    assert confirm.action == "retry", confirm


def test_a_retried_trial_costs_all_its_jobs(tmp_path: Path) -> None:
    """A trial that timed out and was retried continued its checkpoint: its last job ran only
    the epochs the first did not finish. What it cost (the confirmation's price, the next run's
    time limit) is all its jobs, not the last one's time or its device time."""
    from rea_cli.app.trials import expected_seconds
    from rea_cli.planner.engine.decide import full_run_seconds

    b = CampaignBuilder(tmp_path, CID, dataset="synthetic")
    b.hypothesis("wide", delta={"model.embedding_dim": 32})
    b.trial("once", BASELINE, 0, fidelity={})
    b.job("once", "1", gpu_seconds=6.0)
    b.trial("retried", "wide", 0, fidelity={})
    b.job("retried", "2", state="TIMEOUT", exit_code=None, gpu_seconds=14.0)
    b.job("retried", "3", gpu_seconds=5.5)
    for tid, device in (("once", 5.0), ("retried", 5.2)):
        record = b.campaign.trials[tid]
        record.status, record.device_time_s = TrialStatus.SUCCEEDED, device

    assert full_run_seconds(b.campaign, "wide") == [pytest.approx(19.5)]
    assert full_run_seconds(b.campaign, BASELINE) == [pytest.approx(6.0)]
    confirm = TrialDef("c", "wide", 1000, {}, lineage("wide", 1000))
    assert expected_seconds(b.plan, b.campaign, confirm) == pytest.approx(19.5)
    again = TrialDef("b", BASELINE, 1000, {}, lineage(BASELINE, 1000))
    assert expected_seconds(b.plan, b.campaign, again) == pytest.approx(5.0)  # one attempt
