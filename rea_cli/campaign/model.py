"""campaign.json and approval.json as typed data (see docs/architecture.md). Pure: no I/O here.

The campaign store is the only writer of these files; every reader (the agent, `rea status`,
the insights sync, the report) goes through these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ranking_models.contracts import PruneRule
from rea_cli.campaign.state import (
    PHASE_TRANSITIONS,
    ROUND_TRANSITIONS,
    TRIAL_TRANSITIONS,
    CampaignState,
    PhaseStatus,
    RoundStatus,
    TrialStatus,
    checked,
)
from rea_cli.executor.scheduler import JobState

PHASES: tuple[str, ...] = ("validation", "combination", "exploitation")
HypothesisSource = Literal[
    "baseline", "research_kb", "insights_history", "combination", "search", "workspace_kb"
]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=False)


class Budget(_Doc):
    approved_gpu_hours: float
    reserved_gpu_hours: float = 0.0
    spent_gpu_hours: float = 0.0


class Hypothesis(_Doc):
    title: str
    rationale: str = ""
    source: HypothesisSource
    delta: dict[str, Any] = Field(default_factory=dict)
    parents: list[str] = Field(default_factory=list)
    model_family: str = ""
    strategy: str | None = None  # the knowledge-base strategy it instantiates, if any
    level: str = ""
    category: str = ""
    trigger: str = ""  # the observation of the baseline's profile that proposed it
    reference: str = ""
    cost: float = 1.0  # expected trial cost relative to the baseline's
    prior_mean: float = 0.0  # expected relative gain (knowledge base, boosted by the profile)
    prior_sd: float = 0.0
    # the search ranges of its keys for exploitation: key -> {kind, low, high, log, choices}
    search: dict[str, dict[str, Any]] = Field(default_factory=dict)
    study: str = ""  # a search point: the study that asked it, and its number there
    number: int | None = None


class JobRecord(_Doc):
    job_id: str
    round: int
    state: JobState = JobState.PENDING
    exit_code: int | None = None
    node: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    gpu_seconds: float = 0.0
    gpus: int = 0
    time_limit_min: float = 0
    reason: str | None = None
    restarts: int = 0
    failure_kind: str | None = None  # from the attempt's result.json, or the agent's own check
    runbook: str | None = None
    diagnosis: str | None = None
    action: str | None = None  # what rea did about this failed job

    @property
    def has_ended(self) -> bool:
        return self.state.has_ended


class CurvePoint(_Doc):
    """One epoch of a trial's learning curve, as the engine compares curves."""

    epoch: int
    value: float | None  # the campaign metric on the valid split after this epoch
    train_loss: float | None = None
    valid_loss: float | None = None


class TrialRecord(_Doc):
    phase: str
    hypothesis_id: str
    seed: int
    fidelity: dict[str, Any] = Field(default_factory=dict)
    status: TrialStatus = TrialStatus.PENDING
    jobs: list[JobRecord] = Field(default_factory=list)
    diagnosis: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)  # runbook changes (retry_with)
    mem_gb: float | None = None  # memory per task raised by a runbook (resources.mem_gb)
    metric_value: float | None = None  # valid metric at the best epoch of the last success
    test_value: float | None = None  # test metric of the same weights
    attempts: int = 0  # attempt folders seen on disk
    # from the last succeeded attempt's result.json (read once, at ingest)
    curve: list[CurvePoint] = Field(default_factory=list)
    best_epoch: int | None = None
    stopped: str | None = None
    device_time_s: float = 0.0  # the trainer's own time, summed over this trial's attempts
    samples_seen: int = 0
    reused_from: str | None = None  # "<campaign>/<trial>" whose identical result was reused
    key: str | None = None  # the trial's identity (config, data, seed) for reuse
    prune: PruneRule | None = None  # the rule its spec carries (kept for retries)

    def set_status(self, target: TrialStatus) -> None:
        self.status = checked(TRIAL_TRANSITIONS, "trial", self.status, target)

    @property
    def last_job_open(self) -> bool:
        """Its last job may still run (submitted and not known to have ended)."""
        return bool(self.jobs) and not self.jobs[-1].has_ended


class Round(_Doc):
    round: int
    kind: str = ""  # probe | rung | final | step | batch | confirmation | retry
    trial_ids: list[str]
    status: RoundStatus = RoundStatus.SUBMITTING
    time_limit_min: float = 0  # per task, as planned for this round
    overrun_min: float = 0  # what the scheduler lets a task run past it (reserved too)
    gpus: int = 0  # per task
    mem_gb: float | None = None  # per task, when a runbook raised it (else the settings')
    array_job_ids: list[str] = Field(default_factory=list)
    wakeup_job_id: str | None = None
    submitted_at: str | None = None

    def set_status(self, target: RoundStatus) -> None:
        self.status = checked(ROUND_TRANSITIONS, "round", self.status, target)


class Gate(_Doc):
    """The decision taken at the end of a phase (or a step of it), and why."""

    passed: bool = True
    detail: str = ""
    winners: list[str] = Field(default_factory=list)
    best: str | None = None
    gains: dict[str, dict[str, Any]] = Field(default_factory=dict)
    skipped: bool = False


class PhaseRecord(_Doc):
    status: PhaseStatus = PhaseStatus.PENDING
    rounds: list[Round] = Field(default_factory=list)
    gate: Gate | None = None
    selected: list[str] | None = None  # validation: the hypotheses screened, once decided

    def set_status(self, target: PhaseStatus) -> None:
        self.status = checked(PHASE_TRANSITIONS, "phase", self.status, target)


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
    test_ci_low: float | None = None
    test_ci_high: float | None = None
    significant: bool = False
    candidate: str | None = None  # the configuration confirmed (or not): shown either way
    summary: str = ""
    created_at: str = ""

    @property
    def keeps_baseline(self) -> bool:
        return self.hypothesis_id == "baseline"


class Review(_Doc):
    decision: Literal["accepted", "rejected"]
    by: str
    at: str
    note: str = ""


class Approval(_Doc):
    """approval.json: written once by `rea approve`; binds the plan's hash and the budget.

    by/uid: the approver as the OS knows them (the file's owner must be that uid); planner: the
    owner of plan.json; approvers and approver_not_planner: the policy it was approved under."""

    campaign_id: str
    by: str
    uid: int | None = None  # None in records written before the uid was recorded
    at: str
    plan_hash: str
    approved_gpu_hours: float
    planner: str = ""
    approvers: list[str] = Field(default_factory=list)
    approver_not_planner: bool = False
    standing: str | None = None  # a scheduled run: the standing approval that covers it


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
    # a pause rea lifts by itself once its cause is gone (resume and tick check it)
    pause_kind: Literal["approval", "disk_full"] | None = None
    traits: str = ""  # the data's traits (plan profile), for the insights history

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def trials_of(self, phase: str) -> dict[str, TrialRecord]:
        return {tid: t for tid, t in self.trials.items() if t.phase == phase}

    def current_round(self) -> Round | None:
        """The last round of the current phase (None before the first was recorded)."""
        if self.phase is None or self.phase not in self.phases:
            return None
        rounds = self.phases[self.phase].rounds
        return rounds[-1] if rounds else None
