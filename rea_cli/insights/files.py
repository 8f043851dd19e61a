"""Read a campaign folder into rows for the insights tables (no DB here).

The folder is the truth (docs/architecture.md); the DB indexes it. Only files that changed
since the last sync are read: JSON files by (size, mtime, inode), JSON-lines files from the byte
offset where the last sync stopped. A file that is missing, half-written or not valid JSON is
skipped with a warning and is not marked as read, so the next sync picks it up.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ranking_models.contracts import AttemptResult, AttemptStart, TrialSpec
from rea_cli.campaign.model import Approval, Campaign
from rea_cli.planner.plan import Plan

log = logging.getLogger(__name__)


def _first(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    return f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"


# Numeric keys of metrics.jsonl lines and of result.json's valid/test that get their own column;
# any other key goes to metrics.extra (JSON).
METRIC_VALUES = (
    "loss",
    "grad_norm",
    "samples_per_s",
    "memory_mb",
    "lr",
    "time",
    "auc",
    "logloss",
    "ne",
    "ne_eval",
    "calibration",
)
_METRIC_KEYS = frozenset(("event", "split", "epoch", "step", *METRIC_VALUES))


@dataclass(frozen=True)
class FileState:
    """What the last sync saw of one file (the ingested_files table)."""

    size: int
    mtime_ns: int
    inode: int
    read_offset: int = 0
    lines: int = 0

    def same_file(self, st: os.stat_result) -> bool:
        return (self.size, self.mtime_ns, self.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass
class Rows:
    """Rows for one table from one kind of source file, deduplicated by primary key (last wins).

    DuckDB's INSERT ... ON CONFLICT silently keeps the first of two rows with the same key in
    one statement, so duplicates are removed here before they reach it. With prune, the rows
    are the whole set for the campaign: rows of the campaign absent from them are deleted.
    """

    table: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    prune: bool = False
    by_key: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        self.by_key[tuple(map(row.__getitem__, self.key))] = tuple(map(row.get, self.columns))


def merge_sources(tables: list[Rows]) -> list[Rows]:
    """Rows of two sources for the same keys of one table become one row per key.

    Each source writes only its own columns, so two sources of one table (spec.json and
    campaign.json for trials) would insert a row and then update it: DuckDB updates cost more
    than inserts. Rows whose key only one source has stay with that source. Where both sources
    carry a column, the later one wins, as with two upserts in a row. Does not modify `tables`.
    """
    by_table: dict[str, list[Rows]] = {}
    for rows in tables:
        by_table.setdefault(rows.table, []).append(rows)
    out: list[Rows] = []
    for group in by_table.values():
        if len(group) != 2 or any(r.prune for r in group):
            out.extend(group)
            continue
        a, b = group
        both = a.by_key.keys() & b.by_key.keys()
        if not both:
            out.extend(group)
            continue
        merged = Rows(a.table, a.key, a.columns + tuple(c for c in b.columns if c not in a.columns))
        for key in both:
            row = dict(zip(a.columns, a.by_key[key], strict=True))
            row.update(zip(b.columns, b.by_key[key], strict=True))
            merged.by_key[key] = tuple(map(row.__getitem__, merged.columns))
        for source in (a, b):
            rest = Rows(source.table, source.key, source.columns)
            rest.by_key = {k: v for k, v in source.by_key.items() if k not in both}
            out.append(rest)
        out.append(merged)
    return out


@dataclass
class Collected:
    campaign_id: str
    tables: dict[str, Rows] = field(default_factory=dict)
    files: dict[str, FileState] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    files_read: int = 0

    @property
    def has_changes(self) -> bool:
        return bool(self.files) or any(r.by_key or r.prune for r in self.tables.values())


def canonical_json(value: Any) -> str | None:
    """JSON text with sorted keys, so equal values compare equal as text (fidelity_key, delta)."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# The converters below run per value on the bulk path: exact type checks first (a bool is an
# int to isinstance, and must not become 1.0).
def _s(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    return str(value)


def _f(value: Any) -> float | None:
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return float(value)
    return None


def _i(value: Any) -> int | None:
    kind = type(value)
    if kind is int:
        return value
    if kind is bool:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


class CampaignReader:
    """Collects the changed files of one campaign folder into Rows."""

    def __init__(self, campaign_dir: Path, campaign_id: str, known: dict[str, FileState]):
        self.dir = campaign_dir
        self.base = os.path.join(campaign_dir, "")  # str paths: pathlib costs on the bulk path
        self.known = known
        self.out = Collected(campaign_id)
        self.cid = campaign_id

    # -- plumbing --------------------------------------------------------------------------
    def rows(
        self,
        name: str,
        table: str,
        key: tuple[str, ...],
        columns: tuple[str, ...],
        *,
        prune: bool = False,
    ) -> Rows:
        found = self.out.tables.get(name)
        if found is None:
            found = self.out.tables[name] = Rows(table, key, key + columns, prune)
        return found

    def warn(self, message: str) -> None:
        log.warning("%s: %s", self.cid, message)
        self.out.warnings.append(message)

    def _stat(self, rel: str) -> os.stat_result | None:
        try:
            return os.stat(self.base + rel)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def read_json(self, rel: str, *, required: bool = False) -> tuple[dict[str, Any], bytes] | None:
        """The parsed object of a changed JSON file, or None (unchanged, missing, not valid)."""
        prev = self.known.get(rel)
        if prev is not None:  # a file never read is opened straight away: one stat fewer
            st = self._stat(rel)
            if st is not None and prev.same_file(st):
                return None
        try:
            with open(self.base + rel, "rb") as fh:
                st = os.fstat(fh.fileno())
                raw = fh.read()
            data = json.loads(raw)
        except (FileNotFoundError, NotADirectoryError):
            if required:
                self.warn(f"{rel} missing; the campaign is indexed when it appears")
            return None
        except (OSError, ValueError) as exc:
            self.warn(f"{rel} not readable yet ({type(exc).__name__}); skipped until next sync")
            return None
        if not isinstance(data, dict):
            self.warn(f"{rel} is not a JSON object; skipped until it changes")
            return None
        self.out.files[rel] = FileState(st.st_size, st.st_mtime_ns, st.st_ino)
        self.out.files_read += 1
        return data, raw

    def read_lines(self, rel: str) -> list[tuple[int, dict[str, Any]]]:
        """New complete lines of an append-only JSON-lines file as (line number, object).

        Reading resumes at the byte offset where the last sync stopped. A last line without its
        newline is still being written: it is left for the next sync.
        """
        prev = self.known.get(rel)
        if prev is not None:
            st = self._stat(rel)
            if st is None or prev.same_file(st):
                return []
        try:
            with open(self.base + rel, "rb") as fh:
                st = os.fstat(fh.fileno())
                start, line_no = 0, 0
                # the same file grown (not replaced, not truncated): read only the new bytes
                if prev is not None and prev.inode == st.st_ino and st.st_size >= prev.read_offset:
                    start, line_no = prev.read_offset, prev.lines
                fh.seek(start)
                data = fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return []
        end = data.rfind(b"\n") + 1
        if end < len(data):
            self.warn(f"{rel}: last line incomplete ({len(data) - end} bytes); read next sync")
        out = []
        for raw in data[:end].splitlines():
            line_no += 1
            try:
                obj = json.loads(raw)
            except ValueError:
                self.warn(f"{rel}: line {line_no} is not JSON; skipped")
                continue
            if isinstance(obj, dict):
                out.append((line_no, obj))
            else:
                self.warn(f"{rel}: line {line_no} is not a JSON object; skipped")
        self.out.files[rel] = FileState(st.st_size, st.st_mtime_ns, st.st_ino, start + end, line_no)
        self.out.files_read += 1
        return out

    # -- the campaign folder ---------------------------------------------------------------
    def collect(self) -> Collected:
        self.campaign_file()
        self.plan_file()
        self.approval_file()
        self.journal_file()
        self.trial_folders()
        return self.out

    def campaign_file(self) -> None:
        got = self.read_json("campaign.json", required=True)
        if got is None:
            return
        try:
            c = Campaign.model_validate(got[0])
        except ValidationError as exc:
            self.warn(f"campaign.json does not match its model ({_first(exc)}); skipped")
            return
        if c.campaign_id != self.cid:
            self.warn(f"campaign.json names {c.campaign_id!r}; indexed as {self.cid!r}")
        self.rows("campaigns", "campaigns", ("campaign_id",), CAMPAIGN_COLUMNS).add(
            {
                "campaign_id": self.cid,
                "created_at": c.created_at,
                "created_by": c.created_by,
                "state": c.state.value,
                "phase": c.phase,
                "goal": c.goal,
                "model_family": c.model_family,
                "dataset": c.dataset,
                "metric": c.metric,
                "direction": c.direction,
                "backend": c.backend,
                "plan_hash": c.plan_hash,
                "pause_reason": c.pause_reason,
                "approved_gpu_hours": c.budget.approved_gpu_hours,
                "reserved_gpu_hours": c.budget.reserved_gpu_hours,
                "spent_gpu_hours": c.budget.spent_gpu_hours,
                "campaign_dir": str(self.dir),
                "synced_at": None,  # set by the writer
                "traits": c.traits,
            }
        )
        self._hypotheses(c)
        self._phases(c)
        self._trials_and_jobs(c)
        self._proposal_and_review(c)

    def _hypotheses(self, c: Campaign) -> None:
        rows = self.rows(
            "hypotheses",
            "hypotheses",
            ("campaign_id", "hypothesis_id"),
            (
                "title",
                "rationale",
                "source",
                "delta",
                "parents",
                "model_family",
                "strategy",
                "trigger",
            ),
            prune=True,
        )
        for hid, h in c.hypotheses.items():
            rows.add(
                {
                    "campaign_id": self.cid,
                    "hypothesis_id": hid,
                    "title": h.title,
                    "rationale": h.rationale,
                    "source": h.source,
                    "delta": canonical_json(h.delta),
                    "parents": canonical_json(h.parents),
                    "model_family": h.model_family or c.model_family,
                    "strategy": h.strategy,
                    "trigger": h.trigger,
                }
            )

    def _phases(self, c: Campaign) -> None:
        rows = self.rows(
            "phases:campaign",
            "phases",
            ("campaign_id", "phase"),
            ("status", "n_rounds", "submitted_at", "gate_passed", "gate_detail", "rounds"),
        )
        for name, p in c.phases.items():
            submitted = sorted(r.submitted_at for r in p.rounds if r.submitted_at)
            rows.add(
                {
                    "campaign_id": self.cid,
                    "phase": name,
                    "status": p.status.value,
                    "n_rounds": len(p.rounds),
                    "submitted_at": submitted[0] if submitted else None,
                    "gate_passed": p.gate.passed if p.gate else None,
                    "gate_detail": p.gate.detail if p.gate else None,
                    "rounds": canonical_json([r.model_dump(mode="json") for r in p.rounds]),
                }
            )

    def _trials_and_jobs(self, c: Campaign) -> None:
        trials = self.rows(
            "trials:campaign",
            "trials",
            ("campaign_id", "trial_id"),
            (
                "hypothesis_id",
                "phase",
                "seed",
                "fidelity",
                "fidelity_key",
                "status",
                "diagnosis",
                "metric_value",
                "test_value",
                "reused_from",
            ),
        )
        jobs = self.rows(
            "jobs", "jobs", ("campaign_id", "trial_id", "job_id"), JOB_COLUMNS, prune=True
        )
        for tid, t in c.trials.items():
            fidelity = canonical_json(t.fidelity)
            trials.add(
                {
                    "campaign_id": self.cid,
                    "trial_id": tid,
                    "hypothesis_id": t.hypothesis_id,
                    "phase": t.phase,
                    "seed": t.seed,
                    "fidelity": fidelity,
                    "fidelity_key": fidelity,
                    "status": t.status.value,
                    "diagnosis": t.diagnosis,
                    "metric_value": t.metric_value,
                    "test_value": t.test_value,
                    "reused_from": t.reused_from,
                }
            )
            for j in t.jobs:
                jobs.add(
                    {
                        "campaign_id": self.cid,
                        "trial_id": tid,
                        "job_id": j.job_id,
                        "round": j.round,
                        "state": j.state.value,
                        "exit_code": j.exit_code,
                        "node": j.node,
                        "started_at": j.started_at,
                        "ended_at": j.ended_at,
                        "gpu_seconds": j.gpu_seconds,
                        "gpus": j.gpus,
                        "time_limit_min": j.time_limit_min,
                        "reason": j.reason,
                        "restarts": j.restarts,
                        "failure_kind": j.failure_kind,
                        "runbook": j.runbook,
                        "diagnosis": j.diagnosis,
                        "action": j.action,
                    }
                )

    def _proposal_and_review(self, c: Campaign) -> None:
        proposals = self.rows(
            "proposals", "proposals", ("campaign_id",), PROPOSAL_COLUMNS, prune=True
        )
        p = c.proposal
        if p is not None:
            row = {k: getattr(p, k) for k in PROPOSAL_COLUMNS}
            row.update(campaign_id=self.cid, delta=canonical_json(p.delta))
            proposals.add(row)
        reviews = self.rows(
            "reviews",
            "reviews",
            ("campaign_id",),
            ("decision", "reviewed_by", "reviewed_at", "note"),
            prune=True,
        )
        r = c.review
        if r is not None:
            reviews.add(
                {
                    "campaign_id": self.cid,
                    "decision": r.decision,
                    "reviewed_by": r.by,
                    "reviewed_at": r.at,
                    "note": r.note,
                }
            )

    def plan_file(self) -> None:
        got = self.read_json("plan.json")
        if got is None:
            return
        raw = got[1]
        try:
            plan = Plan.model_validate(got[0])
        except ValidationError as exc:
            self.warn(f"plan.json does not match its model ({_first(exc)}); skipped")
            return
        sha = "sha256:" + hashlib.sha256(raw).hexdigest()
        self.rows(
            "plans",
            "plans",
            ("campaign_id",),
            ("plan_hash", "file_sha256", "n_trials", "estimated_gpu_hours", "plan"),
        ).add(
            {
                "campaign_id": self.cid,
                "plan_hash": sha,
                "file_sha256": sha,
                "n_trials": sum(p.max_trials for p in plan.phases),
                "estimated_gpu_hours": plan.estimated_gpu_hours,
                "plan": raw.decode("utf-8", "replace"),
            }
        )
        rows = self.rows(
            "phases:plan",
            "phases",
            ("campaign_id", "phase"),
            ("n_planned_trials", "estimated_gpu_hours"),
        )
        for p in plan.phases:
            rows.add(
                {
                    "campaign_id": self.cid,
                    "phase": p.phase,
                    "n_planned_trials": p.max_trials,
                    "estimated_gpu_hours": p.estimated_gpu_hours,
                }
            )

    def approval_file(self) -> None:
        got = self.read_json("approval.json")
        if got is None:
            return
        try:
            a = Approval.model_validate(got[0])
        except ValidationError as exc:
            self.warn(f"approval.json does not match its model ({_first(exc)}); skipped")
            return
        self.rows(
            "approvals",
            "approvals",
            ("campaign_id",),
            ("plan_hash", "approved_by", "approved_at", "approved_gpu_hours", "approval"),
        ).add(
            {
                "campaign_id": self.cid,
                "plan_hash": a.plan_hash,
                "approved_by": a.by,
                "approved_at": a.at,
                "approved_gpu_hours": a.approved_gpu_hours,
                "approval": got[1].decode("utf-8", "replace"),
            }
        )

    def journal_file(self) -> None:
        events = self.rows(
            "events",
            "events",
            ("campaign_id", "seq"),
            ("event_at", "event", "trial_id", "attempt", "job_id", "details"),
        )
        failures = self.rows(
            "failures",
            "failures",
            ("campaign_id", "seq"),
            ("diagnosed_at", "trial_id", "attempt", "job_id", "diagnosis", "action", "detail"),
        )
        for line_no, e in self.read_lines("journal.jsonl"):
            seq = _i(e.get("seq"))
            if seq is None:
                self.warn(f"journal.jsonl: line {line_no} has no seq; skipped")
                continue
            common = {
                "campaign_id": self.cid,
                "seq": seq,
                "trial_id": _s(e.get("trial_id")),
                "attempt": _i(e.get("attempt")),
                "job_id": _s(e.get("job_id")),
            }
            events.add(
                {
                    **common,
                    "event_at": _s(e.get("at")),
                    "event": _s(e.get("event")),
                    "details": canonical_json(e),
                }
            )
            if e.get("event") == "diagnosis":
                detail = e.get("detail")
                failures.add(
                    {
                        **common,
                        "diagnosed_at": _s(e.get("at")),
                        "diagnosis": _s(e.get("diagnosis")),
                        "action": _s(e.get("action")),
                        "detail": detail if isinstance(detail, str) else canonical_json(detail),
                    }
                )

    def trial_folders(self) -> None:
        try:
            entries = sorted(os.scandir(self.dir / "trials"), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.is_dir():
                self._trial(entry.name)

    def _trial(self, tid: str) -> None:
        got = self.read_json(f"trials/{tid}/spec.json")
        spec = self._contract(got, TrialSpec, f"trials/{tid}/spec.json")
        if spec is not None:
            self.rows(
                "trials:spec",
                "trials",
                ("campaign_id", "trial_id"),
                ("config", "data", "data_name"),
            ).add(
                {
                    "campaign_id": self.cid,
                    "trial_id": tid,
                    "config": canonical_json(spec.config),
                    "data": canonical_json(spec.data),
                    "data_name": _s(spec.data.get("name")),
                }
            )
        try:
            attempts = [e.name for e in os.scandir(f"{self.base}trials/{tid}/attempts")]
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in sorted((n for n in attempts if n.isdigit()), key=int):
            self._attempt(tid, int(name), f"trials/{tid}/attempts/{name}")

    def _attempt(self, tid: str, n: int, rel: str) -> None:
        key = {"campaign_id": self.cid, "trial_id": tid, "attempt": n}
        got = self.read_json(f"{rel}/attempt.json")
        start = self._contract(got, AttemptStart, f"{rel}/attempt.json")
        if start is not None:
            self.rows(
                "attempts:start",
                "attempts",
                ("campaign_id", "trial_id", "attempt"),
                ("job_id", "host", "pid", "started_at"),
            ).add(
                {
                    **key,
                    "job_id": start.job_id,
                    "host": start.host,
                    "pid": start.pid,
                    "started_at": start.started_at,
                }
            )
        got = self.read_json(f"{rel}/result.json")
        if got is not None:
            self._result(key, got[0])
        metrics = self.metrics_rows()
        for line_no, m in self.read_lines(f"{rel}/metrics.jsonl"):
            event = _s(m.get("event"))
            split = _s(m.get("split")) or ("valid" if event == "eval" else "train")
            _add_metric(metrics, key, line_no, split, event, m)

    def _contract(self, got: tuple[dict[str, Any], bytes] | None, model: Any, rel: str) -> Any:
        """The file parsed through its contract model, or None (warned) when it does not fit."""
        if got is None:
            return None
        try:
            return model.model_validate(got[0])
        except ValidationError as exc:
            self.warn(f"{rel} does not match its contract ({_first(exc)}); skipped")
            return None

    def metrics_rows(self) -> Rows:
        return self.rows(
            "metrics",
            "metrics",
            ("campaign_id", "trial_id", "attempt", "line", "split"),
            ("event", "epoch", "step", *METRIC_VALUES, "extra"),
        )

    def _result(self, key: dict[str, Any], raw: dict[str, Any]) -> None:
        """One attempts row from result.json, read through its contract. A result that does
        not parse, or reports non-finite metrics, is a failed attempt ("invalid_result"), as
        the agent judges it: never a NULL status, never a NaN value in the metrics."""
        rows = self.rows(
            "attempts:result", "attempts", ("campaign_id", "trial_id", "attempt"), RESULT_COLUMNS
        )
        try:
            r = AttemptResult.model_validate(raw)
        except ValidationError as exc:
            # only the verdict: what attempt.json says of the attempt stays as it is
            self.rows(
                "attempts:invalid",
                "attempts",
                ("campaign_id", "trial_id", "attempt"),
                ("status", "failure_kind", "failure_message"),
            ).add(
                {
                    **key,
                    "status": "failed",
                    "failure_kind": "invalid_result",
                    "failure_message": f"result.json does not match its contract: {_first(exc)}",
                }
            )
            return
        failure = r.failure
        status: str = r.status
        kind: str | None = failure.kind if failure else None
        message = failure.message if failure else None
        bad = r.non_finite()
        if status == "succeeded" and bad:
            status, kind = "failed", "invalid_result"
            message = f"non-finite metrics: {', '.join(bad)}"
        exit_code = failure.exit_code if failure else (0 if r.status == "succeeded" else None)
        rows.add(
            {
                **key,
                "job_id": r.job_id,
                "host": r.host,
                "started_at": r.started_at,
                "status": status,
                "failure_kind": kind,
                "failure_message": message,
                "failure_epoch": failure.epoch if failure else None,
                "failure_step": failure.step if failure else None,
                "exit_code": exit_code,
                "epochs_completed": r.epochs_completed,
                "resumed_from_epoch": r.resumed_from_epoch,
                "ended_at": r.ended_at,
                "wall_time_s": r.wall_time_s,
                "samples_per_s": r.samples_per_s,
                "peak_memory_mb": r.peak_memory_mb,
                "n_params": r.n_params,
                "device": r.device,
                "versions": canonical_json(r.versions),
                "device_time_s": r.device_time_s,
                "startup_s": r.startup_s,
                "samples_seen": r.samples_seen,
                "best_epoch": r.best_epoch,
                "stopped": r.stopped,
            }
        )
        if bad:
            return  # a NaN must not reach a view as a value
        metrics = self.metrics_rows()
        for split in ("valid", "test"):
            values = getattr(r, split)
            if values:
                _add_metric(metrics, key, 0, split, "final", values)


def _add_metric(
    rows: Rows, key: dict[str, Any], line: int, split: str, event: str | None, m: dict[str, Any]
) -> None:
    """One metrics row, built straight into column order (the hottest loop of a sync)."""
    k = (key["campaign_id"], key["trial_id"], key["attempt"], line, split)
    extra = None
    if not m.keys() <= _METRIC_KEYS:
        extra = canonical_json({n: v for n, v in m.items() if n not in _METRIC_KEYS})
    rows.by_key[k] = (
        *k,
        event,
        _i(m.get("epoch")),
        _i(m.get("step")),
        *[_f(m.get(name)) for name in METRIC_VALUES],
        extra,
    )


_CAMPAIGN_TEXT = (
    "created_at",
    "created_by",
    "state",
    "phase",
    "goal",
    "model_family",
    "dataset",
    "metric",
    "direction",
    "backend",
    "plan_hash",
    "pause_reason",
)
_BUDGET = ("approved_gpu_hours", "reserved_gpu_hours", "spent_gpu_hours")
CAMPAIGN_COLUMNS = (*_CAMPAIGN_TEXT, *_BUDGET, "campaign_dir", "synced_at", "traits")
JOB_COLUMNS = (
    "round",
    "state",
    "exit_code",
    "node",
    "started_at",
    "ended_at",
    "gpu_seconds",
    "gpus",
    "time_limit_min",
    "reason",
    "restarts",
    "failure_kind",
    "runbook",
    "diagnosis",
    "action",
)
PROPOSAL_COLUMNS = (
    "hypothesis_id",
    "delta",
    "metric",
    "direction",
    "baseline_mean",
    "candidate_mean",
    "gain",
    "ci_low",
    "ci_high",
    "n",
    "test_gain",
    "summary",
    "created_at",
)
RESULT_COLUMNS = (
    "job_id",
    "host",
    "started_at",
    "status",
    "failure_kind",
    "failure_message",
    "failure_epoch",
    "failure_step",
    "exit_code",
    "epochs_completed",
    "resumed_from_epoch",
    "ended_at",
    "wall_time_s",
    "samples_per_s",
    "peak_memory_mb",
    "n_params",
    "device",
    "versions",
    "device_time_s",
    "startup_s",
    "samples_seen",
    "best_epoch",
    "stopped",
)


# What the sync reads of a campaign folder (CampaignReader.collect): the folder digest below
# covers exactly these, so "is the DB behind the folder" never misses a file the sync would read.
TOP_FILES = ("campaign.json", "plan.json", "approval.json", "journal.jsonl")
ATTEMPT_FILES = ("attempt.json", "result.json", "metrics.jsonl")


def synced_files(campaign_dir: Path) -> list[str]:
    """Relative paths of the files a sync of campaign_dir reads that exist now."""
    base = os.path.join(campaign_dir, "")
    out = [name for name in TOP_FILES if os.path.isfile(base + name)]
    try:
        trials = sorted(e.name for e in os.scandir(base + "trials") if e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return out
    for tid in trials:
        if os.path.isfile(f"{base}trials/{tid}/spec.json"):
            out.append(f"trials/{tid}/spec.json")
        try:
            names = [e.name for e in os.scandir(f"{base}trials/{tid}/attempts")]
        except (FileNotFoundError, NotADirectoryError):
            continue
        for n in sorted((n for n in names if n.isdigit()), key=int):
            for name in ATTEMPT_FILES:
                rel = f"trials/{tid}/attempts/{n}/{name}"
                if os.path.isfile(base + rel):
                    out.append(rel)
    return out


def folder_digest(campaign_dir: Path) -> tuple[str, int]:
    """A digest of the state of every file the sync reads (path, size, mtime, inode), and
    their number. Equal digests: the sync would find nothing new."""
    h = hashlib.sha256()
    base = os.path.join(campaign_dir, "")
    files = synced_files(campaign_dir)
    for rel in files:
        try:
            st = os.stat(base + rel)
        except FileNotFoundError:
            continue
        h.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\t{st.st_ino}\n".encode())
    return "sha256:" + h.hexdigest(), len(files)


def collect_campaign(
    campaign_dir: Path, campaign_id: str, known: dict[str, FileState]
) -> Collected:
    """Rows from the files of campaign_dir that changed since `known` (the file index)."""
    return CampaignReader(campaign_dir, campaign_id, known).collect()
