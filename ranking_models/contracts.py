"""The files a trial reads and writes, as typed models. Imports no torch.

These are contracts between processes: the agent writes ``spec.json`` and reads what a trial
leaves in its attempt folder (``attempt.json`` at start, ``result.json`` last). The side that
writes a file owns its model; every reader goes through the same model, so a reader can never
accept a shape no writer produces. See docs/architecture.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SPEC_SCHEMA = 1
RESULT_SCHEMA = 1

# The trainer's failure kinds (result.json failure.kind). The agent adds its own diagnoses for
# attempts that left no usable result (missing_result, invalid_result, ...), never written here.
FailureKind = Literal[
    "nan_loss",
    "loss_explosion",
    "grad_explosion",
    "oom",
    "data_error",
    "data_changed",
    "config_error",
    "disk_full",
    "error",
]
# The trainer's exit code when the disk is full: it may not even be able to write result.json,
# so the exit code alone must say it (the agent pauses instead of burning retries).
EXIT_DISK_FULL = 5
# Why a successful run stopped before its horizon: a fidelity rung (stop_at_epoch), early
# stopping on the monitored metric, or the pruning rule of its spec.
StopReason = Literal["rung", "early_stopping", "pruned"]
METRIC_NAMES = ("auc", "logloss", "ne", "ne_eval", "calibration")


class ContractError(ValueError):
    """A contract file is missing, unreadable or has a shape its writer never produces."""


class _Contract(BaseModel):
    # extra="ignore": a newer writer may add fields an older reader does not know yet
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class PruneRule(_Contract):
    """Stop a run early when its monitored valid metric is worse than a threshold at an epoch.

    The agent computes the thresholds from earlier trials' curves (e.g. their median at each
    epoch) when it submits; the trial applies them while it trains, with no agent running.
    """

    metric: Literal["auc", "ne", "logloss"]
    direction: Literal["max", "min"]
    # epoch index (0-based, as in metrics.jsonl) -> the value to beat after that epoch
    thresholds: dict[int, float]

    def prunes(self, epoch: int, value: float) -> bool:
        limit = self.thresholds.get(epoch)
        if limit is None or not math.isfinite(value):
            return False
        return value < limit if self.direction == "max" else value > limit


class DataFingerprint(_Contract):
    """What the data source looked like when the plan was made (checked before training)."""

    size: int | None = None  # bytes of the source files together
    rows: int | None = None
    sha256: str | None = None


class TrialSpec(_Contract):
    """spec.json: written by the agent before submission, read by ``ranking_models.train``."""

    schema_: int = Field(SPEC_SCHEMA, alias="schema")
    campaign_id: str = ""
    trial_id: str
    hypothesis_id: str = ""
    phase: str = ""
    seed: int = Field(strict=True)
    config: dict[str, Any]
    data: dict[str, Any]
    checkpoint_dir: str
    attempts_dir: str
    prune: PruneRule | None = None
    data_fingerprint: DataFingerprint | None = None

    @field_validator("schema_")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value != SPEC_SCHEMA:
            raise ValueError(f"schema {value}; this trainer reads schema {SPEC_SCHEMA}")
        return value

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class AttemptStart(_Contract):
    """attempt.json: written by the trial when an attempt starts, and again once its data,
    model and optimizer are set up, before the first batch (so a run killed at its memory
    limit still tells what no batch size changes)."""

    attempt: int
    trial_id: str
    job_id: str | None = None
    host: str | None = None
    pid: int | None = None
    started_at: str | None = None
    # set when the trainer is ready to train: parameters, where they live, and the process's
    # peak resident memory (host) so far
    n_params: int | None = None
    device: str | None = None
    ready_memory_mb: float | None = None


class FailureRecord(_Contract):
    kind: FailureKind
    message: str = ""
    epoch: int | None = None
    step: int | None = None
    exit_code: int | None = None


class EpochRecord(_Contract):
    """One point of the learning curve: after epoch ``epoch`` (0-based)."""

    epoch: int
    train_loss: float | None = None
    valid: dict[str, float] = Field(default_factory=dict)


class AttemptResult(_Contract):
    """result.json: written last (atomically) by the trial, on failure too."""

    schema_: int = Field(RESULT_SCHEMA, alias="schema")
    trial_id: str
    attempt: int
    job_id: str | None = None
    host: str | None = None
    status: Literal["succeeded", "failed"]
    failure: FailureRecord | None = None
    # valid: the monitored best epoch's metrics; test: the same weights on the test split
    valid: dict[str, float] | None = None
    test: dict[str, float] | None = None
    epochs_completed: int = 0
    best_epoch: int | None = None
    resumed_from_epoch: int = 0
    stopped: StopReason | None = None
    curve: list[EpochRecord] = Field(default_factory=list)
    started_at: str | None = None
    ended_at: str | None = None
    wall_time_s: float | None = None
    # the trainer's own time on its device (training + evaluation of this attempt), without
    # process start and data loading: what trial-equivalents and cost learning count
    device_time_s: float | None = None
    # process start to the first training step (interpreter, imports, data, model build)
    startup_s: float | None = None
    samples_seen: int | None = None
    samples_per_s: float | None = None
    peak_memory_mb: float | None = None
    n_params: int | None = None
    device: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)

    def metric(self, name: str, split: Literal["valid", "test"] = "valid") -> float | None:
        """A finite metric value of a split, else None."""
        block = self.valid if split == "valid" else self.test
        value = (block or {}).get(name)
        if value is None or not math.isfinite(value):
            return None
        return float(value)

    def non_finite(self, names: tuple[str, ...] = METRIC_NAMES) -> list[str]:
        """'valid.auc'-style names of metrics that are NaN or infinite."""
        bad = []
        for split in ("valid", "test"):
            block = getattr(self, split) or {}
            bad += [f"{split}.{k}" for k in names if k in block and not math.isfinite(block[k])]
        return bad

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def read_contract(path: Path, model: type[_Contract]) -> Any:
    """Parse a contract file; ContractError (one line) when it is missing or malformed."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ContractError(f"{path} is missing") from None
    except OSError as exc:
        raise ContractError(f"{path} cannot be read: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ContractError(f"{path} must hold a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise ContractError(f"{path}: {loc}: {err['msg']}") from None
