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

log = logging.getLogger(__name__)

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


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


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
        c = got[0]
        if c.get("campaign_id") not in (None, self.cid):
            self.warn(f"campaign.json names {c.get('campaign_id')!r}; indexed as {self.cid!r}")
        budget = _d(c.get("budget"))
        self.rows("campaigns", "campaigns", ("campaign_id",), CAMPAIGN_COLUMNS).add(
            {
                "campaign_id": self.cid,
                **{k: _s(c.get(k)) for k in _CAMPAIGN_TEXT},
                **{k: _f(budget.get(k)) for k in _BUDGET},
                "campaign_dir": str(self.dir),
                "synced_at": None,  # set by the writer
            }
        )
        self._hypotheses(c)
        self._phases(c)
        self._trials_and_jobs(c)
        self._proposal_and_review(c)

    def _hypotheses(self, c: dict[str, Any]) -> None:
        rows = self.rows(
            "hypotheses",
            "hypotheses",
            ("campaign_id", "hypothesis_id"),
            ("title", "rationale", "source", "delta", "parents", "model_family"),
            prune=True,
        )
        for hid, h in _d(c.get("hypotheses")).items():
            h = _d(h)
            rows.add(
                {
                    "campaign_id": self.cid,
                    "hypothesis_id": hid,
                    "title": _s(h.get("title")),
                    "rationale": _s(h.get("rationale")),
                    "source": _s(h.get("source")),
                    "delta": canonical_json(h.get("delta", {})),
                    "parents": canonical_json(h.get("parents", [])),
                    "model_family": _s(h.get("model_family") or c.get("model_family")),
                }
            )

    def _phases(self, c: dict[str, Any]) -> None:
        rows = self.rows(
            "phases:campaign",
            "phases",
            ("campaign_id", "phase"),
            ("status", "n_rounds", "submitted_at", "gate_passed", "gate_detail", "rounds"),
        )
        for name, p in _d(c.get("phases")).items():
            p = _d(p)
            rounds = [r for r in p.get("rounds") or [] if isinstance(r, dict)]
            submitted = sorted(str(r["submitted_at"]) for r in rounds if r.get("submitted_at"))
            gate = _d(p.get("gate"))
            passed = gate.get("passed")
            rows.add(
                {
                    "campaign_id": self.cid,
                    "phase": name,
                    "status": _s(p.get("status")),
                    "n_rounds": len(rounds),
                    "submitted_at": submitted[0] if submitted else None,
                    "gate_passed": passed if isinstance(passed, bool) else None,
                    "gate_detail": _s(gate.get("detail")),
                    "rounds": canonical_json(rounds),
                }
            )

    def _trials_and_jobs(self, c: dict[str, Any]) -> None:
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
            ),
        )
        jobs = self.rows(
            "jobs", "jobs", ("campaign_id", "trial_id", "job_id"), JOB_COLUMNS, prune=True
        )
        for tid, t in _d(c.get("trials")).items():
            t = _d(t)
            fidelity = canonical_json(t.get("fidelity") or {})
            trials.add(
                {
                    "campaign_id": self.cid,
                    "trial_id": tid,
                    "hypothesis_id": _s(t.get("hypothesis_id")),
                    "phase": _s(t.get("phase")),
                    "seed": _i(t.get("seed")),
                    "fidelity": fidelity,
                    "fidelity_key": fidelity,
                    "status": _s(t.get("status")),
                    "diagnosis": _s(t.get("diagnosis")),
                    "metric_value": _f(t.get("metric_value")),
                }
            )
            for j in t.get("jobs") or []:
                if not isinstance(j, dict) or not j.get("job_id"):
                    continue
                jobs.add(
                    {
                        "campaign_id": self.cid,
                        "trial_id": tid,
                        "job_id": str(j["job_id"]),
                        "round": _i(j.get("round")),
                        "state": _s(j.get("state")),
                        "exit_code": _i(j.get("exit_code")),
                        "node": _s(j.get("node")),
                        "started_at": _s(j.get("started_at")),
                        "ended_at": _s(j.get("ended_at")),
                        "gpu_seconds": _f(j.get("gpu_seconds")),
                        "gpus": _i(j.get("gpus")),
                        "time_limit_min": _i(j.get("time_limit_min")),
                        "reason": _s(j.get("reason")),
                        "restarts": _i(j.get("restarts")),
                    }
                )

    def _proposal_and_review(self, c: dict[str, Any]) -> None:
        proposals = self.rows(
            "proposals", "proposals", ("campaign_id",), PROPOSAL_COLUMNS, prune=True
        )
        p = c.get("proposal")
        if isinstance(p, dict):
            row: dict[str, Any] = {"campaign_id": self.cid}
            for k in PROPOSAL_COLUMNS:
                row[k] = _s(p.get(k)) if k in _PROPOSAL_TEXT else _f(p.get(k))
            row["delta"] = canonical_json(p.get("delta"))
            row["n"] = _i(p.get("n"))
            row["metric"] = _s(p.get("metric") or c.get("metric"))
            row["direction"] = _s(p.get("direction") or c.get("direction"))
            proposals.add(row)
        reviews = self.rows(
            "reviews",
            "reviews",
            ("campaign_id",),
            ("decision", "reviewed_by", "reviewed_at", "note"),
            prune=True,
        )
        r = c.get("review")
        if isinstance(r, dict):
            reviews.add(
                {
                    "campaign_id": self.cid,
                    "decision": _s(r.get("decision")),
                    "reviewed_by": _s(r.get("by")),
                    "reviewed_at": _s(r.get("at")),
                    "note": _s(r.get("note")),
                }
            )

    def plan_file(self) -> None:
        got = self.read_json("plan.json")
        if got is None:
            return
        plan, raw = got
        sha = "sha256:" + hashlib.sha256(raw).hexdigest()
        phases = _plan_phases(plan)
        n_trials = _count(plan.get("trials"))
        if n_trials is None and phases:
            n_trials = sum(p["n_planned_trials"] or 0 for p in phases)
        estimate = _f(plan.get("estimated_gpu_hours"))
        if estimate is None and phases:
            estimate = sum(p["estimated_gpu_hours"] or 0.0 for p in phases)
        self.rows(
            "plans",
            "plans",
            ("campaign_id",),
            ("plan_hash", "file_sha256", "n_trials", "estimated_gpu_hours", "plan"),
        ).add(
            {
                "campaign_id": self.cid,
                "plan_hash": _s(plan.get("plan_hash")) or sha,
                "file_sha256": sha,
                "n_trials": n_trials,
                "estimated_gpu_hours": estimate,
                "plan": raw.decode("utf-8", "replace"),
            }
        )
        rows = self.rows(
            "phases:plan",
            "phases",
            ("campaign_id", "phase"),
            ("n_planned_trials", "estimated_gpu_hours"),
        )
        for p in phases:
            rows.add({"campaign_id": self.cid, **p})

    def approval_file(self) -> None:
        got = self.read_json("approval.json")
        if got is None:
            return
        a, raw = got
        budget = a.get("budget")
        hours = _f(a.get("approved_gpu_hours")) or _f(a.get("budget_gpu_hours"))
        if hours is None:
            hours = (
                _f(budget) if not isinstance(budget, dict) else _f(budget.get("approved_gpu_hours"))
            )
        self.rows(
            "approvals",
            "approvals",
            ("campaign_id",),
            ("plan_hash", "approved_by", "approved_at", "approved_gpu_hours", "approval"),
        ).add(
            {
                "campaign_id": self.cid,
                "plan_hash": _s(a.get("plan_hash")),
                "approved_by": _s(a.get("approved_by") or a.get("by")),
                "approved_at": _s(a.get("approved_at") or a.get("at")),
                "approved_gpu_hours": hours,
                "approval": raw.decode("utf-8", "replace"),
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
        if got is not None:
            spec = got[0]
            data = spec.get("data")
            self.rows(
                "trials:spec",
                "trials",
                ("campaign_id", "trial_id"),
                ("config", "data", "data_name"),
            ).add(
                {
                    "campaign_id": self.cid,
                    "trial_id": tid,
                    "config": canonical_json(spec.get("config")),
                    "data": canonical_json(data),
                    "data_name": _s(_d(data).get("name")),
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
        if got is not None:
            a = got[0]
            self.rows(
                "attempts:start",
                "attempts",
                ("campaign_id", "trial_id", "attempt"),
                ("job_id", "host", "pid", "started_at"),
            ).add(
                {
                    **key,
                    "job_id": _s(a.get("job_id")),
                    "host": _s(a.get("host")),
                    "pid": _i(a.get("pid")),
                    "started_at": _s(a.get("started_at")),
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

    def metrics_rows(self) -> Rows:
        return self.rows(
            "metrics",
            "metrics",
            ("campaign_id", "trial_id", "attempt", "line", "split"),
            ("event", "epoch", "step", *METRIC_VALUES, "extra"),
        )

    def _result(self, key: dict[str, Any], r: dict[str, Any]) -> None:
        failure = _d(r.get("failure"))
        status = _s(r.get("status"))
        exit_code = _i(failure.get("exit_code"))
        if exit_code is None and status == "succeeded":
            exit_code = 0
        self.rows(
            "attempts:result",
            "attempts",
            ("campaign_id", "trial_id", "attempt"),
            RESULT_COLUMNS,
        ).add(
            {
                **key,
                "job_id": _s(r.get("job_id")),
                "host": _s(r.get("host")),
                "started_at": _s(r.get("started_at")),
                "status": status,
                "failure_kind": _s(failure.get("kind")),
                "failure_message": _s(failure.get("message")),
                "failure_epoch": _i(failure.get("epoch")),
                "failure_step": _i(failure.get("step")),
                "exit_code": exit_code,
                "epochs_completed": _i(r.get("epochs_completed")),
                "resumed_from_epoch": _i(r.get("resumed_from_epoch")),
                "ended_at": _s(r.get("ended_at")),
                "wall_time_s": _f(r.get("wall_time_s")),
                "samples_per_s": _f(r.get("samples_per_s")),
                "peak_memory_mb": _f(r.get("peak_memory_mb")),
                "n_params": _i(r.get("n_params")),
                "device": _s(r.get("device")),
                "versions": canonical_json(r.get("versions")),
            }
        )
        metrics = self.metrics_rows()
        for split in ("valid", "test"):
            values = r.get(split)
            if isinstance(values, dict):
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


def _count(value: Any) -> int | None:
    return len(value) if isinstance(value, list | dict) else None


def _plan_phases(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-phase trial counts and GPU-hour estimates, from a list or a mapping of phases."""
    raw = plan.get("phases")
    items: list[tuple[str, dict[str, Any]]] = []
    if isinstance(raw, dict):
        items = [(str(k), _d(v)) for k, v in raw.items()]
    elif isinstance(raw, list):
        for p in raw:
            p = _d(p)
            name = p.get("phase") or p.get("name")
            if name:
                items.append((str(name), p))
    return [
        {
            "phase": name,
            "n_planned_trials": _count(p.get("trials")) or _i(p.get("max_trials")),
            "estimated_gpu_hours": _f(p.get("estimated_gpu_hours")),
        }
        for name, p in items
    ]


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
CAMPAIGN_COLUMNS = (*_CAMPAIGN_TEXT, *_BUDGET, "campaign_dir", "synced_at")
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
)
_PROPOSAL_TEXT = ("hypothesis_id", "metric", "direction", "summary", "created_at")
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
)


def collect_campaign(
    campaign_dir: Path, campaign_id: str, known: dict[str, FileState]
) -> Collected:
    """Rows from the files of campaign_dir that changed since `known` (the file index)."""
    return CampaignReader(campaign_dir, campaign_id, known).collect()
