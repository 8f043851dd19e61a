"""rea.toml -> validated, typed, frozen settings.

Every problem in the file becomes one UsageError line that names the key, what is wrong and the
file to fix. Unknown keys are rejected (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from rea_cli.errors import UsageError

CONFIG_NAME = "rea.toml"
MAX_TIME_LIMIT_MIN = 60 * 24 * 30  # no scheduler runs one trial for longer than a month


def _one_line(value: str) -> str:
    # a value that reaches a generated script (#SBATCH line, crontab) must not add a line
    if any(not ch.isprintable() for ch in value):
        raise ValueError("must be one line of printable text (no newline or control character)")
    return value


Line = Annotated[str, AfterValidator(_one_line)]
UserName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]


class _Section(BaseModel):
    # every number finite (nan or inf in rea.toml is a typo, never a setting) and every value
    # of its own TOML type ("yes" is not a boolean, "2" not a number)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class LocalSettings(_Section):
    max_parallel: int = Field(2, ge=1, le=1024, description="trials running at once here")
    gpus_per_trial: int = Field(
        1,
        ge=0,
        le=64,
        description="devices counted per trial for the budget; 0 (CPU only) counts as 1",
    )
    time_limit_min: int = Field(
        30, ge=1, le=MAX_TIME_LIMIT_MIN, description="worst-case minutes per trial (budget)"
    )


class SlurmSettings(_Section):
    partition: Line | None = None
    account: Line | None = None
    qos: Line | None = None
    constraint: Line | None = None
    gpus_per_trial: int = Field(1, ge=0, le=64, description="0 (CPU only) counts as 1 device")
    cpus_per_trial: int = Field(4, ge=1, le=4096)
    mem_gb: float | None = Field(16.0, gt=0, le=1e6)
    max_mem_gb: float | None = Field(
        None,
        gt=0,
        le=1e6,
        description="the most memory a retry after an out-of-memory kill asks for",
    )
    time_limit_min: int = Field(60, ge=1, le=MAX_TIME_LIMIT_MIN)
    array_parallelism: int = Field(16, ge=1, le=100_000)
    extra_sbatch: dict[Line, Line] = Field(default_factory=dict)
    setup: list[Line] = Field(default_factory=list)
    preamble: Line | None = Field(None, description="file (workspace-relative) in every wake-up")


class InsightsSettings(_Section):
    storage_version: str | None = Field(
        None,
        pattern=r"^v\d+\.\d+\.\d+$",
        description="e.g. 'v1.4.0' for older DuckDB clients",
    )
    lock_retries: int = Field(5, ge=0, le=100)


class GuardrailSettings(_Section):
    max_attempts_per_trial: int = Field(3, ge=1, le=20, description="first run + retries")
    max_failed_fraction: float = Field(
        0.5, ge=0, le=1, description="pause the campaign when more of a phase's trials fail"
    )
    min_free_mb: int = Field(
        100,
        ge=0,
        le=10**9,
        description="pause (submitting nothing) while the workspace's disk has less free space",
    )


class ApprovalSettings(_Section):
    approvers: list[UserName] = Field(
        default_factory=list,
        description="user names allowed to approve; empty: anyone who can write the workspace",
    )
    approver_not_planner: bool = Field(
        False, description="the approver must be another user than the one who planned"
    )


class PlannerSettings(_Section):
    metric: Literal["auc", "ne", "logloss"] = "auc"
    max_hypotheses: int = Field(
        8, ge=1, le=100, description="hypotheses screened in validation at most"
    )
    validation_seeds: int = Field(
        2, ge=2, le=20, description="paired seeds of the baseline probe and the final rung"
    )
    screen_seeds: int = Field(1, ge=1, le=20, description="seeds of the early rungs")
    eta: int = Field(3, ge=2, le=10, description="successive halving keeps 1/eta at each rung")
    correction: Literal["bh", "holm"] = Field(
        "bh", description="multiple-comparison correction of the validation gate"
    )
    significance: float = Field(
        0.2,
        gt=0,
        lt=1,
        allow_inf_nan=False,
        description="false discovery rate (bh) or family-wise error (holm) of the gate",
    )
    confirmation_seeds: int = Field(
        5, ge=5, le=50, description="fresh paired seeds of the final confirmation"
    )
    exploitation_batch: int = Field(4, ge=1, le=256, description="search points per round")
    stall_batches: int = Field(
        2, ge=1, le=50, description="stop searching after this many batches without progress"
    )
    search_rounds: int = Field(
        3, ge=1, le=10, description="search rounds at most, each confirmed and better than the last"
    )
    early_stopping_patience: int = Field(
        2, ge=1, le=100, description="patience of trials that train longer than the baseline"
    )


class Settings(_Section):
    backend: Literal["local", "slurm"] = "local"
    shared: bool = Field(
        False, description="a workspace shared by a group: files group-writable (umask 002)"
    )
    local: LocalSettings = Field(default_factory=LocalSettings)
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    insights: InsightsSettings = Field(default_factory=InsightsSettings)
    guardrails: GuardrailSettings = Field(default_factory=GuardrailSettings)
    planner: PlannerSettings = Field(default_factory=PlannerSettings)
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)


def load_settings(path: Path) -> Settings:
    """Read and validate rea.toml; raise UsageError with one line naming the fix."""
    if not path.is_file():
        raise UsageError(f"{path}: missing; create it with `rea init {path.parent}`")
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    return parse_settings(raw, source=str(path))


def parse_settings(raw: dict[str, Any], *, source: str = CONFIG_NAME) -> Settings:
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise UsageError(f"{source}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    key = _key_name(loc)
    if err["type"] == "extra_forbidden":
        section = _section_model(loc[:-1])
        valid = ", ".join(section.model_fields) if section else ""
        return f"unknown key {key}; valid keys here: {valid}"
    given = err.get("input")
    shown = f" (got {given!r})" if given is not None and not isinstance(given, dict) else ""
    if len(shown) > 100:
        shown = shown[:96] + "...)"
    return f"{key}: {err['msg']}{shown}; fix this value"


def _key_name(loc: list[str]) -> str:
    if len(loc) == 1:
        return loc[0]
    return f"[{'.'.join(loc[:-1])}].{loc[-1]}"


def _section_model(loc: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = Settings
    for part in loc:
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def default_toml(
    backend: str,
    shared: bool = False,
    *,
    cpus_per_trial: int = 4,
    mem_gb: float = 16.0,
    gpus_per_trial: int = 1,
) -> str:
    """The commented rea.toml written by `rea init` (per-trial resources: what fits the
    cluster `rea init` found, else these defaults)."""
    return f"""\
# rea workspace settings. Every key is optional; shown values are the defaults.
# Docs: README.md and docs/ in the rea repository.

# Where trials run: "slurm" (sbatch on this cluster) or "local" (this machine).
backend = "{backend}"
# A workspace shared by a group (`rea init --shared`): rea runs with umask 002 here, so every
# file it writes is group-writable (docs/security.md).
shared = {"true" if shared else "false"}

[local]
# Trials running at once on this machine.
max_parallel = 2
# Devices counted per trial for the budget (device-hours; 0 = CPU only, counted as 1 device).
gpus_per_trial = 1
# Worst-case minutes per trial, used to reserve budget.
time_limit_min = 30

[slurm]
# partition = "gpu"
# account = "my-account"
# qos = "normal"
# constraint = "a100"
gpus_per_trial = {gpus_per_trial}
cpus_per_trial = {cpus_per_trial}
mem_gb = {float(mem_gb)!r}
# A trial killed at its memory limit is retried with twice the memory, up to what a node of the
# partition offers or this cap; then with a smaller batch.
# max_mem_gb = 64.0
time_limit_min = 60
# Array tasks of one phase running at once.
array_parallelism = 16
# Extra sbatch options, e.g. {{ "exclusive" = "" }}.
extra_sbatch = {{}}
# Shell lines run at the top of every trial job and every wake-up job (Slurm only: the local
# backend runs nothing before a trial), after the preamble, e.g. ["module load cuda/12.4"].
setup = []
# A file (relative to this workspace) inserted first in every trial and wake-up job script.
# preamble = "preamble.sh"

[insights]
# Write the DB readable by older DuckDB clients, e.g. "v1.4.0".
# storage_version = "v1.4.0"
lock_retries = 5

[guardrails]
# A trial runs at most this many times (first run + retries from the runbooks).
max_attempts_per_trial = 3
# Pause the campaign when a larger fraction of one phase's trials fail.
max_failed_fraction = 0.5
# Pause the campaign (submitting nothing, burning no retry) while the workspace's filesystem
# has less free space than this; it goes on by itself once space is freed.
min_free_mb = 100

[approval]
# Who may approve a plan (user names). Empty: anyone who can write the workspace.
approvers = []
# Refuse an approval by the user who planned the campaign (two people per campaign).
approver_not_planner = false

[planner]
# Metric the campaign optimises on the validation split: auc (higher is better), ne or logloss.
metric = "auc"
# Hypotheses screened in validation, at most (fewer when the budget requires it).
max_hypotheses = 8
# Paired seeds of the baseline probe and of the final validation rung (>= 2).
validation_seeds = 2
# Seeds of the early (short) rungs of successive halving.
screen_seeds = 1
# Successive halving keeps the best 1/eta of the hypotheses at each rung.
eta = 3
# The validation gate corrects for choosing among many: "bh" (false discovery rate) or "holm".
correction = "bh"
significance = 0.2
# Fresh paired seeds of the final confirmation of the best candidate (>= 5).
confirmation_seeds = 5
# Search points per exploitation round; stop after this many rounds without progress.
exploitation_batch = 4
stall_batches = 2
# Another search round around the confirmed candidate while it keeps improving, at most:
search_rounds = 3
# Early-stopping patience (epochs) of trials that train longer than the baseline.
early_stopping_patience = 2
"""
