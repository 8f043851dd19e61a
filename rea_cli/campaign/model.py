"""campaign.json as typed data (see docs/architecture.md). Pure: no I/O here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rea_cli.campaign.state import CampaignState

PHASES: tuple[str, ...] = ("validation", "combination", "exploitation")
TrialStatus = Literal["pending", "submitted", "succeeded", "failed", "cancelled"]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=False)


class Budget(_Doc):
    approved_gpu_hours: float
    reserved_gpu_hours: float = 0.0
    spent_gpu_hours: float = 0.0


class Hypothesis(_Doc):
    title: str
    rationale: str = ""
    source: Literal["baseline", "research_kb", "insights_history", "combination"]
    delta: dict[str, Any] = Field(default_factory=dict)
    parents: list[str] = Field(default_factory=list)
    model_family: str = ""


class JobRecord(_Doc):
    job_id: str
    round: int
    state: str = "PENDING"
    exit_code: int | None = None
    node: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    gpu_seconds: float = 0.0
    gpus: int = 0
    time_limit_min: int = 0
    reason: str | None = None
    restarts: int = 0
    failure_kind: str | None = None  # from the attempt's result.json
    runbook: str | None = None
    diagnosis: str | None = None
    action: str | None = None  # what rea did about this failed job


class TrialRecord(_Doc):
    phase: str
    hypothesis_id: str
    seed: int
    fidelity: dict[str, Any] = Field(default_factory=dict)
    status: TrialStatus = "pending"
    jobs: list[JobRecord] = Field(default_factory=list)
    diagnosis: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)  # runbook changes (retry_with)
    metric_value: float | None = None  # validation metric of the last succeeded attempt
    test_value: float | None = None
    attempts: int = 0  # attempt folders seen on disk


class Round(_Doc):
    round: int
    trial_ids: list[str]
    status: Literal["submitting", "submitted", "released"] = "submitting"
    array_job_ids: list[str] = Field(default_factory=list)
    wakeup_job_id: str | None = None
    submitted_at: str | None = None


class PhaseRecord(_Doc):
    status: Literal["pending", "submitted", "done", "skipped"] = "pending"
    rounds: list[Round] = Field(default_factory=list)
    gate: dict[str, Any] | None = None


class Proposal(_Doc):
    hypothesis_id: str
    delta: dict[str, Any]
    metric: str
    direction: Literal["max", "min"]
    baseline_mean: float | None
    candidate_mean: float | None
    gain: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    test_gain: float | None = None
    summary: str = ""
    created_at: str = ""


class Review(_Doc):
    decision: Literal["accepted", "rejected"]
    by: str
    at: str
    note: str = ""


class Campaign(_Doc):
    schema_: int = Field(1, alias="schema")
    campaign_id: str
    created_at: str
    created_by: str
    state: CampaignState = CampaignState.PLANNED
    phase: str | None = None
    goal: str = ""
    model_family: str
    dataset: str
    metric: str
    direction: Literal["max", "min"]
    backend: Literal["local", "slurm"]
    plan_hash: str
    budget: Budget
    hypotheses: dict[str, Hypothesis] = Field(default_factory=dict)
    phases: dict[str, PhaseRecord] = Field(default_factory=dict)
    trials: dict[str, TrialRecord] = Field(default_factory=dict)
    proposal: Proposal | None = None
    review: Review | None = None
    pause_reason: str | None = None

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def trials_of(self, phase: str) -> dict[str, TrialRecord]:
        return {tid: t for tid, t in self.trials.items() if t.phase == phase}
