"""Build campaign folders for insights tests with the real writers, never by hand.

campaign.json and journal.jsonl go through CampaignStore (the agent's only writer of them);
plan.json and approval.json are the Plan and Approval models written as `rea plan` and
`rea approve` write them; spec.json is built by the agent's own trial_spec; an attempt folder is
what the trainer leaves: attempt.json (AttemptStart), metrics.jsonl one event a line,
result.json (AttemptResult), with the trainer's atomic writer. A test that needs a damaged file
damages one of these.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path
from typing import Any

from ranking_models.contracts import AttemptResult, AttemptStart, EpochRecord, FailureRecord
from ranking_models.train import write_json_atomic as trainer_write_json
from rea_cli import budget
from rea_cli.app.trials import trial_spec
from rea_cli.campaign.model import (
    Approval,
    Budget,
    Campaign,
    Gate,
    Hypothesis,
    HypothesisSource,
    JobRecord,
    PhaseRecord,
    Round,
    TrialRecord,
)
from rea_cli.campaign.state import CampaignState, PhaseStatus, RoundStatus, TrialStatus
from rea_cli.campaign.store import CampaignStore
from rea_cli.config import CONFIG_NAME, default_toml
from rea_cli.executor.scheduler import JobState
from rea_cli.fsutil import write_json_atomic
from rea_cli.planner.engine import TrialDef
from rea_cli.planner.engine.common import lineage
from rea_cli.planner.plan import BASELINE, plan_hash
from rea_cli.workspace import Workspace
from tests.plans import real_plan

T0 = "2026-11-22T10:00:00+00:00"
T1 = "2026-11-22T10:05:00+00:00"
# The trainer's exit codes by failure kind (ranking_models.train: 3 diverged, 4 OOM, 1 other).
_EXIT_CODES = {"nan_loss": 3, "loss_explosion": 3, "grad_explosion": 3, "oom": 4}


def workspace(root: Path) -> Workspace:
    """A workspace as `rea init` leaves it (rea.toml, campaigns/), but without an insights DB:
    the tests decide when it is created."""
    (root / "campaigns").mkdir(parents=True, exist_ok=True)
    config = root / CONFIG_NAME
    if not config.exists():
        config.write_text(default_toml("local"), encoding="utf-8")
    return Workspace(root)


def append_line(path: Path, obj: dict[str, Any]) -> None:
    """One metrics.jsonl line, as the trainer's AttemptRecorder.emit writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj) + "\n")


def final_values(auc: float, logloss: float = 0.55) -> dict[str, float]:
    return {"auc": auc, "logloss": logloss, "ne": 0.8, "ne_eval": 0.81, "calibration": 1.02}


class CampaignBuilder:
    """One campaign folder under <workspace>/campaigns/<campaign_id>/, written by the real writers.

    `campaign` is the Campaign model the agent keeps; change it, then write_campaign() saves it
    through the store. `plan` is the Plan whose baseline and data the trial specs are built from.
    """

    def __init__(
        self,
        root: Path | Workspace,
        campaign_id: str = "c20261122-ab12",
        *,
        model_family: str = "dcn_v2",
        dataset: str = "movielens-100k",
        metric: str = "auc",
        direction: str = "max",
        approved_gpu_hours: float = 4.0,
    ) -> None:
        self.ws = root if isinstance(root, Workspace) else workspace(root)
        self.store = CampaignStore(self.ws, campaign_id)
        self.campaign_id = campaign_id
        self.dir = self.store.dir
        self.dir.mkdir(parents=True, exist_ok=True)
        assert direction in ("max", "min")
        self.campaign = Campaign(
            campaign_id=campaign_id,
            created_at=T0,
            created_by="alice",
            state=CampaignState.RUNNING,
            phase="validation",
            goal="raise valid AUC",
            model_family=model_family,
            dataset=dataset,
            metric=metric,
            direction=direction,
            backend="local",
            plan_hash="sha256:" + "0" * 64,
            budget=Budget(approved_gpu_hours=approved_gpu_hours),
        )
        self.hypothesis(BASELINE, source="baseline", delta={})
        self.plan = real_plan(
            campaign_id,
            family=model_family,
            dataset=dataset,
            metric=metric,
            budget_gpu_hours=approved_gpu_hours,
        )

    # -- campaign.json ---------------------------------------------------------------------
    def hypothesis(
        self,
        hid: str,
        *,
        source: HypothesisSource = "research_kb",
        delta: dict[str, Any] | None = None,
    ) -> None:
        self.campaign.hypotheses[hid] = Hypothesis(
            title=f"try {hid}",
            rationale=f"because {hid}",
            source=source,
            delta=delta if delta is not None else {"model.embedding_dim": 32},
            model_family=self.campaign.model_family,
        )

    def phase(self, name: str, *, status: str = "submitted", gate: bool | None = None) -> None:
        trial_ids = [tid for tid, t in self.campaign.trials.items() if t.phase == name]
        self.campaign.phases[name] = PhaseRecord(
            status=PhaseStatus(status),
            rounds=[
                Round(
                    round=1,
                    trial_ids=trial_ids,
                    status=RoundStatus.RELEASED,
                    time_limit_min=30,
                    gpus=1,
                    array_job_ids=["100"],
                    wakeup_job_id="101",
                    submitted_at=T0,
                )
            ],
            gate=None if gate is None else Gate(passed=gate, detail="3 of 4 beat baseline"),
        )

    def trial(
        self,
        tid: str,
        hypothesis_id: str,
        seed: int,
        *,
        phase: str = "validation",
        fidelity: dict[str, Any] | None = None,
    ) -> Path:
        """Record the trial (submitted) in the campaign and write its spec.json as the agent
        does before submission."""
        fidelity = fidelity if fidelity is not None else {"train.data_fraction": 0.5}
        self.campaign.trials[tid] = TrialRecord(
            phase=phase,
            hypothesis_id=hypothesis_id,
            seed=seed,
            fidelity=fidelity,
            status=TrialStatus.SUBMITTED,
        )
        record = self.campaign.phases.get(phase)
        if record is not None and record.rounds:
            record.rounds[-1].trial_ids.append(tid)
        spec = trial_spec(
            self.store,
            self.plan,
            self.campaign,
            phase,
            TrialDef(tid, hypothesis_id, seed, fidelity, lineage(hypothesis_id, seed)),
        )
        write_json_atomic(self.store.spec_path(tid), spec.dump())
        return self.store.trial_dir(tid)

    def job(
        self,
        tid: str,
        job_id: str,
        *,
        state: str = "COMPLETED",
        gpu_seconds: float = 12.0,
        exit_code: int | None = 0,
        time_limit_min: float = 30,
        gpus: int = 1,
        restarts: int = 0,
    ) -> JobRecord:
        js = JobState(state)
        job = JobRecord(
            job_id=job_id,
            round=1,
            state=js,
            exit_code=exit_code if js.has_ended else None,
            node=None if js in (JobState.PENDING, JobState.HELD) else "node1",
            started_at=None if js in (JobState.PENDING, JobState.HELD) else T0,
            ended_at=T1 if js.has_ended else None,
            gpu_seconds=gpu_seconds,
            gpus=gpus,
            time_limit_min=time_limit_min,
            restarts=restarts,
        )
        self.campaign.trials[tid].jobs.append(job)
        return job

    def write_campaign(self) -> None:
        budget.refresh(self.campaign)  # as the agent does before it saves
        self.store.save(self.campaign)

    def write_plan(self) -> None:
        """plan.json as `rea plan` writes it; the campaign binds its hash."""
        self.plan = self.plan.model_copy(update={"hypotheses": dict(self.campaign.hypotheses)})
        write_json_atomic(self.store.plan_path, self.plan.dump())
        self.campaign.plan_hash = plan_hash(self.store.plan_path.read_bytes())

    def write_approval(self) -> Approval:
        """approval.json as `rea approve` writes it, bound to the plan's hash and the budget."""
        approval = Approval(
            campaign_id=self.campaign_id,
            by="alice",
            at=T0,
            plan_hash=self.campaign.plan_hash,
            approved_gpu_hours=self.campaign.budget.approved_gpu_hours,
        )
        write_json_atomic(self.store.approval_path, approval.model_dump(mode="json"))
        return approval

    # -- journal.jsonl ---------------------------------------------------------------------
    def event(self, event: str, **details: Any) -> dict[str, Any]:
        return self.store.event(event, **details)

    # -- the agent's judgement of attempts -------------------------------------------------
    def judge(self, phase: str = "validation") -> None:
        """Trial outcomes from the attempt folders, by the agent's own ingest step: a
        submitted trial becomes succeeded (metric_value, test_value) or failed (failure_kind)."""
        from rea_cli.app.resume import ingest_attempts

        current = self.campaign.phase
        self.campaign.phase = phase
        ingest_attempts(self.store, self.campaign, self.plan)
        self.campaign.phase = current

    # -- attempts (what the trainer writes) ------------------------------------------------
    def attempt(
        self,
        tid: str,
        n: int = 1,
        *,
        auc: float | None = 0.78,
        logloss: float = 0.55,
        status: str | None = "succeeded",
        failure_kind: str | None = None,
        job_id: str | None = None,
        train_lines: int = 2,
        job_state: str | None = "COMPLETED",
        gpu_seconds: float = 12.0,
        device_time_s: float = 10.1,
        samples_seen: int = 80000,
    ) -> Path:
        """Write attempt n of trial tid as the trainer does: attempt.json, metrics.jsonl (train
        lines, the valid eval line, the test eval line of a finished run), result.json (status
        None: killed from outside, no result). Also records its job in the campaign."""
        job_id = job_id or f"{100 + n}_{zlib.crc32(tid.encode()) % 1000}"
        folder = self.store.attempts_dir(tid) / str(n)
        folder.mkdir(parents=True, exist_ok=True)
        start = AttemptStart(
            attempt=n, trial_id=tid, job_id=job_id, host="node1", pid=4242, started_at=T0
        )
        trainer_write_json(folder / "attempt.json", start.model_dump(mode="json"))
        for step in range(train_lines):
            self.metric_line(tid, n, _train_line(step))
        if auc is not None:
            self.metric_line(tid, n, _eval_line("valid", final_values(auc, logloss)))
            if status == "succeeded":
                self.metric_line(tid, n, _eval_line("test", final_values(auc - 0.01, logloss)))
        if status is not None:
            result = attempt_result(
                tid,
                n,
                job_id,
                status,
                auc,
                logloss,
                failure_kind,
                device_time_s=device_time_s,
                samples_seen=samples_seen,
            )
            trainer_write_json(folder / "result.json", result.dump())
        if job_state is not None:
            self.job(
                tid,
                job_id,
                state=job_state,
                gpu_seconds=gpu_seconds,
                exit_code=0 if job_state == "COMPLETED" else 1,
            )
        return folder

    def metric_line(self, tid: str, n: int, obj: dict[str, Any]) -> None:
        append_line(self.store.attempts_dir(tid) / str(n) / "metrics.jsonl", obj)


def _train_line(step: int) -> dict[str, Any]:
    return {
        "event": "train",
        "epoch": 0,
        "step": 50 * (step + 1),
        "loss": 0.6 - 0.01 * step,
        "grad_norm": 1.3,
        "samples_per_s": 81000.0,
        "memory_mb": 512.0,
        "lr": 0.001,
        "time": 3.2,
    }


def _eval_line(split: str, values: dict[str, float]) -> dict[str, Any]:
    return {"event": "eval", "epoch": 0, "split": split, **values, "time": 4.0}


def attempt_result(
    tid: str,
    n: int,
    job_id: str,
    status: str,
    auc: float | None,
    logloss: float = 0.55,
    failure_kind: str | None = None,
    *,
    device_time_s: float = 10.1,
    samples_seen: int = 80000,
) -> AttemptResult:
    """result.json of an attempt that trained one epoch (or failed in its second)."""
    failed = status == "failed"
    values = None if auc is None or failed else final_values(auc, logloss)
    failure = None
    if failed:
        kind = failure_kind or "error"
        failure = FailureRecord.model_validate(
            {
                "kind": kind,
                "message": "loss is NaN" if kind == "nan_loss" else f"{kind} in epoch 1",
                "epoch": 1,
                "step": 120,
                "exit_code": _EXIT_CODES.get(kind, 1),
            }
        )
    finite = values is not None and all(math.isfinite(v) for v in values.values())
    return AttemptResult.model_validate(
        {
            "trial_id": tid,
            "attempt": n,
            "job_id": job_id,
            "host": "node1",
            "status": status,
            "failure": failure,
            "valid": values,
            "test": None if values is None else {**values, "auc": values["auc"] - 0.01},
            "epochs_completed": 1,
            "best_epoch": None if values is None else 0,
            "curve": [EpochRecord(epoch=0, train_loss=0.59, valid=values)] if finite else [],
            "started_at": T0,
            "ended_at": T1,
            "wall_time_s": 12.3,
            "device_time_s": device_time_s,
            "startup_s": 2.0,
            "samples_seen": samples_seen,
            # the default figures as before; a test's own figures with their own rate
            "samples_per_s": (
                80000.0
                if (device_time_s, samples_seen) == (10.1, 80000)
                else samples_seen / device_time_s
            ),
            "peak_memory_mb": 600.0,
            "n_params": 123456,
            "device": "cpu",
            "versions": {"python": "3.11", "torch": "2.13.0", "ranking_models": "0.1.0"},
        }
    )


def paired_campaign(
    root: Path | Workspace,
    campaign_id: str = "c20261122-ab12",
    *,
    base: tuple[float, ...] = (0.780, 0.782, 0.779),
    gains: dict[str, tuple[float, ...]] | None = None,
    **kwargs: Any,
) -> CampaignBuilder:
    """A finished validation phase: baseline and hypotheses x seeds, every attempt succeeded
    and judged by the agent."""
    gains = gains if gains is not None else {"emb32": (0.004, 0.006, 0.005)}
    b = CampaignBuilder(root, campaign_id, **kwargs)
    for k, hid in enumerate(gains):
        # a real delta each: hypothesis_effects groups by it
        b.hypothesis(hid, delta={"model.embedding_dim": 32 + 8 * k})
    b.phase("validation", status="done", gate=True)
    b.write_plan()
    b.write_approval()
    b.event("planned", plan_hash=b.campaign.plan_hash, by="alice")
    b.event("state", previous="PLANNED", state="APPROVED", by="alice")
    for seed, value in enumerate(base):
        tid = f"validation-baseline-s{seed}"
        b.trial(tid, BASELINE, seed)
        b.attempt(tid, auc=value)
    for hid, deltas in gains.items():
        for seed, gain in enumerate(deltas):
            tid = f"validation-{hid}-s{seed}"
            b.trial(tid, hid, seed)
            b.attempt(tid, auc=base[seed] + gain)
            b.event("attempt_ended", trial_id=tid, attempt=1, status="succeeded")
    b.judge("validation")
    b.write_campaign()
    return b
