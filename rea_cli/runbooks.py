"""Runbooks: load the runbook files, diagnose a failed attempt, choose an allowed action.

Loading is I/O; `diagnose` and `choose_action` are pure. Guardrails bound what an action may do:
retries stop at max_attempts_per_trial, and `retry_with` may only change allow-listed keys. A
`retry_with` tries its `change`, then each of its `alternatives`, and takes the first that can
help; when none can (no more memory to ask for, and the data and model alone do not fit), the
trial is given up with the reasons: the hypothesis is excluded rather than retried in vain.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rea_cli.errors import UsageError
from rea_cli.paths import shipped_dir

Action = Literal["retry", "retry_with", "give_up", "pause_campaign"]
# keys a runbook may change when retrying: resource-shaped knobs, never the hypothesis itself.
# resources.* change what the trial's task asks the scheduler for, train.* its config.
MEM_KEY = "resources.mem_gb"
CHANGEABLE = frozenset(
    {MEM_KEY, "train.batch_size", "train.eval_batch_size", "train.grad_clip_norm"}
)
Change = dict[str, str | int | float]


class Match(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    failure_kind: list[str] = Field(default_factory=list)
    job_state: list[str] = Field(default_factory=list)
    exit_code: list[int] = Field(default_factory=list)


class Runbook(BaseModel):
    """One runbook entry. Validated whole when loaded, and again whenever a plan holding it is
    read: a bad action is refused at `rea plan`, never found when a trial fails."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    id: str = Field(min_length=1, max_length=64)
    title: str
    match: Match = Field(default_factory=Match)
    diagnosis: str
    action: Action
    change: Change = Field(default_factory=dict)
    alternatives: list[Change] = Field(
        default_factory=list
    )  # tried in order when `change` cannot help
    note: str = ""

    @model_validator(mode="after")
    def _check_change(self) -> Runbook:
        bad = sorted(set(self.change).union(*self.alternatives) - CHANGEABLE)
        if bad:
            raise ValueError(
                f"cannot change {', '.join(bad)}; allowed: {', '.join(sorted(CHANGEABLE))}"
            )
        if self.change and self.action != "retry_with":
            raise ValueError(f"'change' needs action = \"retry_with\", not {self.action!r}")
        if self.action == "retry_with" and not self.change:
            raise ValueError(
                "action retry_with needs a 'change' (e.g. train.batch_size = \"x0.5\")"
            )
        if self.alternatives and self.action != "retry_with":
            raise ValueError(f"'alternatives' need action = \"retry_with\", not {self.action!r}")
        for key, rule in (i for c in (self.change, *self.alternatives) for i in c.items()):
            if isinstance(rule, str) and _factor(rule) is None:
                raise ValueError(
                    f"change {key} = {rule!r}: give a number, or 'x' and a positive factor "
                    '(e.g. "x0.5")'
                )
        return self


def _factor(rule: str) -> float | None:
    """'x0.5' -> 0.5; None when the rule is not a positive, finite factor."""
    if not rule.startswith("x"):
        return None
    try:
        factor = float(rule[1:])
    except ValueError:
        return None
    return factor if math.isfinite(factor) and factor > 0 else None


@dataclass(frozen=True)
class Failure:
    """What is known about one failed attempt."""

    failure_kind: str | None
    job_state: str | None
    exit_code: int | None
    message: str = ""


@dataclass(frozen=True)
class Footprint:
    """Memory facts of a trial killed at its memory limit (all None when not known)."""

    mem_gb: float | None = None  # the limit it ran with
    max_mem_gb: float | None = None  # the most one task can be given
    fixed_mb: float | None = None  # data, model and optimizer state: what no batch size changes
    before_ready: bool = False  # killed before its data and model were even set up


@dataclass(frozen=True)
class Decision:
    runbook_id: str
    diagnosis: str
    action: Action
    change: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


def load_runbooks(extra_dir: Path | None = None) -> list[Runbook]:
    """Shipped runbooks, after the workspace's own (extra_dir/*.toml), which take priority."""
    books: list[Runbook] = []
    for folder in [d for d in (extra_dir, shipped_dir("runbooks")) if d and d.is_dir()]:
        for path in sorted(folder.glob("*.toml")):
            books.extend(_load_file(path))
    if not books:
        raise UsageError("no runbooks found; reinstall rea (runbooks/*.toml is missing)")
    return books


def _load_file(path: Path) -> list[Runbook]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"runbook {path}: not valid TOML ({exc}); fix the syntax") from None
    entries = raw.get("runbook", [])
    extra = sorted(set(raw) - {"runbook"})
    if extra or not isinstance(entries, list):
        raise UsageError(f"runbook {path}: write each runbook as a [[runbook]] table; fix it")
    books = []
    for i, entry in enumerate(entries):
        try:
            book = Runbook.model_validate(entry)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "entry"
            msg = err["msg"].removeprefix("Value error, ")
            raise UsageError(f"runbook {path} entry {i + 1}: {loc}: {msg}; fix it") from None
        books.append(book)
    return books


def _matches(m: Match, f: Failure) -> bool:
    if m.failure_kind and f.failure_kind not in m.failure_kind:
        return False
    if m.job_state and f.job_state not in m.job_state:
        return False
    return not (m.exit_code and f.exit_code not in m.exit_code)


def diagnose(books: list[Runbook], failure: Failure) -> Runbook:
    for book in books:
        if _matches(book.match, failure):
            return book
    return Runbook(id="none", title="No runbook", diagnosis="no runbook matched", action="give_up")


def choose_action(
    book: Runbook,
    failure: Failure,
    *,
    attempts: int,
    max_attempts: int,
    config: dict[str, Any],
    footprint: Footprint | None = None,
) -> Decision:
    """The runbook's action if the guardrails allow it, else give up. A `retry_with` takes
    the first of its changes that can help; when none can, it gives up and says why."""
    detail = failure.message
    if book.action in ("retry", "retry_with") and attempts >= max_attempts:
        return Decision(
            book.id,
            book.diagnosis,
            "give_up",
            detail=f"{detail} (retries exhausted: {attempts}/{max_attempts} attempts)".strip(),
        )
    if book.action != "retry_with":
        return Decision(book.id, book.diagnosis, book.action, {}, detail)
    why_not: list[str] = []
    for rules in [book.change, *book.alternatives]:
        change, reason = _change(rules, config, footprint or Footprint())
        if change is not None:
            said = ", ".join(f"{k} -> {v}" for k, v in change.items())
            return Decision(book.id, book.diagnosis, "retry_with", change, _join(detail, said))
        why_not.append(reason)
    excluded = "; ".join(why_not) + ": the hypothesis is excluded, not retried"
    return Decision(book.id, book.diagnosis, "give_up", {}, _join(detail, excluded))


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _change(
    rules: Change, config: dict[str, Any], fp: Footprint
) -> tuple[dict[str, Any] | None, str]:
    """The values of one change, or None and why it cannot help."""
    change: dict[str, Any] = {}
    for key, rule in rules.items():
        if key == MEM_KEY:
            value, reason = _more_memory(rule, fp)
        else:
            value, reason = _apply(config, key, rule), ""
            if key == "train.batch_size" and fp.mem_gb is not None:
                reason = _batch_cannot_help(fp)
            current = config.get(key.split(".")[0], {}).get(key.split(".", 1)[1])
            if not reason and value == current:
                reason = f"{key} is already {current}"
        if reason:
            return None, reason
        change[key] = value
    return change, ""


def _more_memory(rule: str | int | float, fp: Footprint) -> tuple[float | None, str]:
    if fp.mem_gb is None:
        return None, "the trial has no memory limit to raise"
    wanted = fp.mem_gb * float(rule[1:]) if isinstance(rule, str) else float(rule)
    if fp.max_mem_gb is None:
        return None, "the most memory a task may get is unknown"
    if fp.mem_gb >= fp.max_mem_gb * 0.999:
        return None, f"it already had {fp.mem_gb:g} GB, the most a task may get"
    return round(min(wanted, fp.max_mem_gb), 3), ""


def _batch_cannot_help(fp: Footprint) -> str:
    """Why a smaller batch cannot fit the trial in its memory limit ("" when it may)."""
    limit_mb = (fp.mem_gb or 0.0) * 1024
    if fp.before_ready:
        return (
            f"it ran out of memory before its first batch: its data and model alone do not "
            f"fit in {fp.mem_gb:g} GB, whatever the batch size"
        )
    if fp.fixed_mb is not None and fp.fixed_mb >= limit_mb:
        return (
            f"its data, model and optimizer state alone take about {fp.fixed_mb:.0f} MB of its "
            f"{limit_mb:.0f} MB: a smaller batch cannot help"
        )
    return ""


def _apply(config: dict[str, Any], key: str, rule: str | int | float) -> Any:
    section, name = key.split(".", 1)
    current = config.get(section, {}).get(name)
    factor = _factor(rule) if isinstance(rule, str) else None
    if factor is not None and isinstance(current, int | float):
        value = current * factor
        return max(1, int(value)) if isinstance(current, int) else value
    return rule
