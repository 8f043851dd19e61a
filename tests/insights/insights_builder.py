"""Build campaign folders for insights tests, in exactly the docs/architecture.md formats.

JSON files are written as the agent and the trainer write them (temp file + rename); metrics.jsonl
and journal.jsonl are appended a line at a time.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

T0 = "2026-11-22T10:00:00+00:00"


@dataclass(frozen=True)
class Paths:
    """The workspace paths the insights code is given (as rea_cli.workspace.Workspace has)."""

    root: Path

    @property
    def db_path(self) -> Path:
        return self.root / "insights.duckdb"

    @property
    def analyst_db_path(self) -> Path:
        return self.root / "insights-analyst.duckdb"


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def append_line(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, sort_keys=True) + "\n")


class CampaignBuilder:
    """One campaign folder under ws/campaigns/<campaign_id>/."""

    def __init__(
        self,
        workspace: Path,
        campaign_id: str = "c20261122-ab12",
        *,
        model_family: str = "dcn_v2",
        dataset: str = "movielens-100k",
        metric: str = "auc",
        direction: str = "max",
        approved_gpu_hours: float = 4.0,
    ) -> None:
        self.campaign_id = campaign_id
        self.dir = workspace / "campaigns" / campaign_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.seq = 0
        self.doc: dict[str, Any] = {
            "schema": 1,
            "campaign_id": campaign_id,
            "created_at": T0,
            "created_by": "alice",
            "state": "RUNNING",
            "phase": "validation",
            "goal": "raise valid AUC",
            "model_family": model_family,
            "dataset": dataset,
            "metric": metric,
            "direction": direction,
            "backend": "local",
            "plan_hash": "sha256:" + "0" * 64,
            "budget": {
                "approved_gpu_hours": approved_gpu_hours,
                "reserved_gpu_hours": 0.5,
                "spent_gpu_hours": 0.0,
            },
            "hypotheses": {},
            "phases": {},
            "trials": {},
            "proposal": None,
            "review": None,
        }

    # -- campaign.json ---------------------------------------------------------------------
    def hypothesis(
        self, hid: str, *, source: str = "research_kb", delta: dict[str, Any] | None = None
    ) -> None:
        self.doc["hypotheses"][hid] = {
            "title": f"try {hid}",
            "rationale": f"because {hid}",
            "source": source,
            "delta": delta if delta is not None else {"model.embedding_dim": 32},
            "parents": [],
            "model_family": self.doc["model_family"],
        }

    def phase(self, name: str, *, status: str = "submitted", gate: bool | None = None) -> None:
        self.doc["phases"][name] = {
            "status": status,
            "rounds": [
                {
                    "round": 1,
                    "array_job_ids": ["100"],
                    "wakeup_job_id": "101",
                    "submitted_at": T0,
                }
            ],
            "gate": None if gate is None else {"passed": gate, "detail": "3 of 4 beat baseline"},
        }

    def trial(
        self,
        tid: str,
        hypothesis_id: str,
        seed: int,
        *,
        phase: str = "validation",
        fidelity: dict[str, Any] | None = None,
    ) -> Path:
        """Record the trial in campaign.json (write_campaign) and write its spec.json."""
        fidelity = fidelity if fidelity is not None else {"train.data_fraction": 0.5}
        self.doc["trials"][tid] = {
            "phase": phase,
            "hypothesis_id": hypothesis_id,
            "seed": seed,
            "fidelity": fidelity,
            "status": "submitted",
            "jobs": [],
        }
        trial_dir = self.dir / "trials" / tid
        write_json(
            trial_dir / "spec.json",
            {
                "schema": 1,
                "campaign_id": self.campaign_id,
                "trial_id": tid,
                "hypothesis_id": hypothesis_id,
                "phase": phase,
                "seed": seed,
                "config": {
                    "model": {"family": self.doc["model_family"], "embedding_dim": 16},
                    "train": {"epochs": 2, "batch_size": 1024, **fidelity},
                },
                "data": {"name": "synthetic", "n_rows": 20000, "split_seed": 0},
                "checkpoint_dir": str(trial_dir / "checkpoint"),
                "attempts_dir": str(trial_dir / "attempts"),
            },
        )
        return trial_dir

    def job(
        self,
        tid: str,
        job_id: str,
        *,
        state: str = "COMPLETED",
        gpu_seconds: float = 12.0,
        exit_code: int | None = 0,
        time_limit_min: int = 30,
    ) -> None:
        self.doc["trials"][tid]["jobs"].append(
            {
                "job_id": job_id,
                "round": 1,
                "state": state,
                "exit_code": exit_code,
                "node": "node1",
                "started_at": T0,
                "ended_at": "2026-11-22T10:05:00+00:00",
                "gpu_seconds": gpu_seconds,
                "gpus": 1,
                "time_limit_min": time_limit_min,
                "reason": None,
                "restarts": 0,
            }
        )

    def write_campaign(self) -> None:
        write_json(self.dir / "campaign.json", self.doc)

    def write_plan(self) -> None:
        write_json(
            self.dir / "plan.json",
            {
                "schema": 1,
                "campaign_id": self.campaign_id,
                "phases": [
                    {"phase": "validation", "max_trials": 6, "estimated_gpu_hours": 0.5},
                    {"phase": "combination", "max_trials": 3, "estimated_gpu_hours": 0.3},
                ],
            },
        )

    def write_approval(self) -> None:
        write_json(
            self.dir / "approval.json",
            {
                "approved_by": "alice",
                "approved_at": T0,
                "plan_hash": self.doc["plan_hash"],
                "budget_gpu_hours": self.doc["budget"]["approved_gpu_hours"],
            },
        )

    # -- journal.jsonl ---------------------------------------------------------------------
    def event(self, event: str, **details: Any) -> None:
        self.seq += 1
        append_line(
            self.dir / "journal.jsonl",
            {
                "seq": self.seq,
                "at": T0,
                "event": event,
                "campaign_id": self.campaign_id,
                **details,
            },
        )

    # -- attempts (what the trainer writes) ------------------------------------------------
    def attempt(
        self,
        tid: str,
        n: int = 1,
        *,
        auc: float | None = 0.78,
        status: str | None = "succeeded",
        failure_kind: str | None = None,
        job_id: str | None = None,
        train_lines: int = 2,
        job_state: str | None = "COMPLETED",
        gpu_seconds: float = 12.0,
    ) -> Path:
        """Write attempt n of trial tid: attempt.json, metrics.jsonl, result.json (status None:
        killed from outside, no result). Also records its job in campaign.json (job_state)."""
        job_id = job_id or f"{100 + n}_{zlib.crc32(tid.encode()) % 1000}"
        folder = self.dir / "trials" / tid / "attempts" / str(n)
        write_json(
            folder / "attempt.json",
            {"attempt": n, "job_id": job_id, "host": "node1", "pid": 4242, "started_at": T0},
        )
        for step in range(train_lines):
            self.metric_line(
                tid,
                n,
                {
                    "event": "train",
                    "epoch": 0,
                    "step": 50 * (step + 1),
                    "loss": 0.6 - 0.01 * step,
                    "grad_norm": 1.3,
                    "samples_per_s": 81000.0,
                    "memory_mb": 512.0,
                    "lr": 0.001,
                    "time": 3.2,
                },
            )
        if auc is not None:
            self.metric_line(tid, n, _eval_line(auc))
        if status is not None:
            write_json(
                folder / "result.json", result_doc(tid, n, job_id, status, auc, failure_kind)
            )
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
        append_line(self.dir / "trials" / tid / "attempts" / str(n) / "metrics.jsonl", obj)


def _eval_line(auc: float) -> dict[str, Any]:
    return {
        "event": "eval",
        "epoch": 0,
        "split": "valid",
        "auc": auc,
        "logloss": 0.55,
        "ne": 0.8,
        "ne_eval": 0.81,
        "calibration": 1.02,
        "time": 4.0,
    }


def result_doc(
    tid: str, n: int, job_id: str, status: str, auc: float | None, failure_kind: str | None
) -> dict[str, Any]:
    failed = status == "failed"
    values = (
        None
        if auc is None
        else {"auc": auc, "logloss": 0.55, "ne": 0.8, "ne_eval": 0.81, "calibration": 1.02}
    )
    return {
        "schema": 1,
        "trial_id": tid,
        "attempt": n,
        "job_id": job_id,
        "host": "node1",
        "status": status,
        "failure": {
            "kind": failure_kind or "error",
            "message": "loss is NaN",
            "epoch": 1,
            "step": 120,
            "exit_code": 3,
        }
        if failed
        else None,
        "valid": None if failed else values,
        "test": None if failed or values is None else {**values, "auc": values["auc"] - 0.01},
        "epochs_completed": 1 if failed else 2,
        "resumed_from_epoch": 0,
        "started_at": T0,
        "ended_at": "2026-11-22T10:05:00+00:00",
        "wall_time_s": 12.3,
        "samples_per_s": 80000.0,
        "peak_memory_mb": 600.0,
        "n_params": 123456,
        "device": "cpu",
        "versions": {"python": "3.11", "torch": "2.13.0", "ranking_models": "0.1.0"},
    }


def paired_campaign(
    workspace: Path,
    campaign_id: str = "c20261122-ab12",
    *,
    base: tuple[float, ...] = (0.780, 0.782, 0.779),
    gains: dict[str, tuple[float, ...]] | None = None,
    **kwargs: Any,
) -> CampaignBuilder:
    """A finished validation phase: baseline and hypotheses x seeds, every attempt succeeded."""
    gains = gains if gains is not None else {"emb32": (0.004, 0.006, 0.005)}
    b = CampaignBuilder(workspace, campaign_id, **kwargs)
    b.hypothesis("baseline", source="baseline", delta={})
    b.phase("validation", status="done", gate=True)
    b.write_plan()
    b.write_approval()
    b.event("planned")
    b.event("approved", by="alice")
    for seed, value in enumerate(base):
        tid = f"validation-baseline-s{seed}"
        b.trial(tid, "baseline", seed)
        b.attempt(tid, auc=value)
        b.doc["trials"][tid]["status"] = "succeeded"
    for hid, deltas in gains.items():
        b.hypothesis(hid, delta={"model.embedding_dim": 32, "h": hid})
        for seed, gain in enumerate(deltas):
            tid = f"validation-{hid}-s{seed}"
            b.trial(tid, hid, seed)
            b.attempt(tid, auc=base[seed] + gain)
            b.doc["trials"][tid]["status"] = "succeeded"
            b.event("attempt_ended", trial_id=tid, attempt=1, status="succeeded")
    b.write_campaign()
    return b
