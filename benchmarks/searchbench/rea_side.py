"""A full rea campaign as a user runs it, through the real CLI, and what it cost.

``rea init`` (local backend), ``rea plan`` with a GPU-hour budget worth ``budget_te`` baseline
trials of allocation time, ``rea approve``, ``rea launch``, then ``rea status --json`` until the
campaign awaits review. Its compute is read from every attempt's result.json in the campaign
folder (the trainer's own device_time_s, the same clock as the in-process searches); its
selection is the proposal applied to the plan's baseline, as ``rea review --accept`` would write
it (no review is made: a second campaign in the same workspace starts from history only).

Only the CLI, the campaign folder's files and ranking_models' file contracts are used, so this
works whatever the engine's internals.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from benchmarks.searchbench.accounting import Clock, RunResult, TrialRecord, with_compute
from ranking_models.contracts import AttemptResult, ContractError, TrialSpec, read_contract

POLL_S = 2.0
STATUS_EVERY_S = 60.0
DONE_STATE = "AWAITING_REVIEW"
# states a campaign does not leave by itself: waiting longer would not help
STUCK_STATES = ("PAUSED", "CANCELLED", "FAILED", "ACCEPTED", "REJECTED")


class ReaRun(BaseModel):
    """One rea campaign's outcome: state, selection and compute (every trial it ran)."""

    campaign_id: str
    workspace: str
    seed: int
    seeded: bool  # the CLI took the seed; when False every seed plans the same campaign
    budget_te: float
    budget_gpu_hours: float
    state: str | None = None
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    proposal: dict[str, Any] | None = None
    selected_config: dict[str, Any] | None = None
    trials: list[TrialRecord] = Field(default_factory=list)
    n_missing_results: int = 0  # attempts without a usable result.json (compute unknown)
    spent_gpu_hours: float | None = None
    wall_s: float = 0.0

    @property
    def te_used(self) -> float:
        return sum(t.te for t in self.trials)


def rea_cli(
    ws: Path | None, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The real ``rea`` command in a new process."""
    cmd = [sys.executable, "-m", "rea_cli"]
    if ws is not None:
        cmd += ["--workspace", str(ws)]
    full = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env=full, timeout=timeout, check=False
    )


class ReaCommandError(RuntimeError):
    """A rea command failed; the message is its last stderr line."""


def _ok(done: subprocess.CompletedProcess[str], what: str) -> str:
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise ReaCommandError(
            f"`rea {what}` exited {done.returncode}: {lines[-1] if lines else ''}"
        )
    return done.stdout


def merge_settings(text: str, extra: str) -> str:
    """rea.toml text with the [sections] that `extra` sets replaced by extra's (appended)."""
    sections = [line.strip() for line in extra.splitlines() if line.strip().startswith("[")]
    for section in sections:
        if section in text:
            head, _, tail = text.partition(section)
            nxt = tail.find("\n[")
            text = head + (tail[nxt + 1 :] if nxt >= 0 else "")
    return text.rstrip("\n") + "\n\n" + extra.strip("\n") + "\n"


def budget_arg(gpu_hours: float) -> str:
    """A --budget value rea parses exactly enough for small budgets (GPU-minutes)."""
    return f"{gpu_hours * 60:.4f}gpu-min"


_SEED_SUPPORT: dict[str, bool] = {}


def plan_takes_seed(env: dict[str, str] | None = None) -> bool:
    """Whether `rea plan` has a --seed option (asked once)."""
    if "plan" not in _SEED_SUPPORT:
        done = rea_cli(None, "plan", "--help", env=env, timeout=60)
        _SEED_SUPPORT["plan"] = "--seed" in done.stdout
    return _SEED_SUPPORT["plan"]


def ensure_workspace(ws: Path, settings: str, env: dict[str, str] | None) -> None:
    """A local-backend workspace with the given rea.toml settings (kept when it exists)."""
    if (ws / "rea.toml").is_file():
        return
    _ok(rea_cli(None, "init", str(ws), "--backend", "local", env=env), "init")
    if settings.strip():
        config = ws / "rea.toml"
        config.write_text(merge_settings(config.read_text(), settings))


def wait_for_review(
    ws: Path, cid: str, timeout_s: float, env: dict[str, str] | None, poll_s: float = POLL_S
) -> dict[str, Any]:
    """`rea status CID --json` until the campaign awaits review or cannot get there.

    A status call costs ~0.3 CPU-s, taken from the trials running beside it: it is asked when
    campaign.json changed (checked every poll_s) or a minute has passed.
    """
    deadline = time.monotonic() + timeout_s
    state_file = ws / "campaigns" / cid / "campaign.json"
    seen: float | None = None
    asked = 0.0
    while True:
        mtime = state_file.stat().st_mtime if state_file.exists() else None
        if mtime != seen or time.monotonic() - asked > STATUS_EVERY_S:
            seen, asked = mtime, time.monotonic()
            status = json.loads(_ok(rea_cli(ws, "status", cid, "--json", env=env), "status"))
            state = status.get("state")
            if state == DONE_STATE:
                return status
            if state in STUCK_STATES:
                why = status.get("pause_reason") or status.get("error") or ""
                raise ReaCommandError(f"campaign {cid} is {state}" + (f": {why}" if why else ""))
        if time.monotonic() > deadline:
            rea_cli(ws, "cancel", cid, env=env)
            raise ReaCommandError(f"campaign {cid} not done after {timeout_s:.0f} s; cancelled")
        time.sleep(poll_s)


def read_campaign_trials(
    campaign_dir: Path, unit: float | Clock, seed: int
) -> tuple[list[TrialRecord], int]:
    """Every attempt with a result.json, in order of completion, and the count without one."""
    found: list[tuple[str, str, TrialRecord]] = []
    missing = 0
    for spec_path in sorted((campaign_dir / "trials").glob("*/spec.json")):
        try:
            spec: TrialSpec = read_contract(spec_path, TrialSpec)
        except ContractError:
            missing += 1
            continue
        for attempt in sorted(spec_path.parent.glob("attempts/*")):
            try:
                res: AttemptResult = read_contract(attempt / "result.json", AttemptResult)
            except ContractError:
                missing += 1
                continue
            if res.device_time_s is None:
                missing += 1  # a trainer that does not measure device time: compute unknown
                continue
            record = TrialRecord(
                method="rea",
                search_seed=seed,
                index=0,
                seed=spec.seed,
                config=spec.config,
                params={"trial_id": spec.trial_id, "phase": spec.phase, "attempt": res.attempt},
                result=_run_result(res),
            )
            found.append((res.ended_at or "", str(attempt), record))
    found.sort(key=lambda item: (item[0], item[1]))
    ordered = [r.model_copy(update={"index": i}) for i, (_, _, r) in enumerate(found)]
    return with_compute(ordered, unit), missing


def _run_result(res: AttemptResult) -> RunResult:
    failure = f"{res.failure.kind}: {res.failure.message}" if res.failure else None
    started, ended = _epoch(res.started_at), _epoch(res.ended_at)
    return RunResult(
        status=res.status,
        failure=failure,
        valid=res.valid or {},
        test=res.test or {},
        device_time_s=res.device_time_s or 0.0,
        startup_s=res.startup_s,
        samples_seen=res.samples_seen or 0,
        epochs_completed=res.epochs_completed,
        best_epoch=res.best_epoch,
        started_at=started,
        ended_at=ended,
    )


def _epoch(iso: str | None) -> float | None:
    """An ISO time of a result.json as epoch seconds (None when absent or unreadable)."""
    if not iso:
        return None
    with contextlib.suppress(ValueError):
        return dt.datetime.fromisoformat(iso).timestamp()
    return None


def selected_config(campaign_dir: Path, proposal: dict[str, Any] | None) -> dict[str, Any]:
    """The config rea proposes: the plan's baseline + the proposal's delta (or its config)."""
    from ranking_models.config import apply_delta

    plan = json.loads((campaign_dir / "plan.json").read_text())
    if proposal and isinstance(proposal.get("config"), dict):
        return dict(proposal["config"])
    return apply_delta(plan["baseline"], (proposal or {}).get("delta") or {})


def run_rea_campaign(
    workspace: Path,
    dataset: str,
    budget_te: float,
    te_seconds: float,
    seed: int,
    *,
    alloc_seconds: float,
    model: str = "dcn_v2",
    metric: str = "ne",
    profile: str = "standard",
    settings: str = "",
    budget_gpu_hours: float | None = None,
    campaign_id: str | None = None,
    plan_seed: int | None = None,
    expected_data: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float | None = None,
) -> ReaRun:
    """Plan, approve and launch a campaign worth budget_te baseline trials; wait for review.

    te_seconds is the TE unit (device seconds of one baseline trial), alloc_seconds what one
    baseline trial is charged as a scheduler allocation (process wall time on the local
    backend): the GPU-hour budget is budget_te x alloc_seconds / 3600 unless budget_gpu_hours
    overrides it. A workspace that exists is reused (a second campaign sees the first's history).
    plan_seed (default: seed) is `rea plan --seed`: a second campaign with another one trains
    no trial identical to the first's, so what it gains comes from the history, not a cache.
    Failures are returned in ReaRun.error, never raised.
    """
    started = time.monotonic()
    gpu_h = budget_gpu_hours if budget_gpu_hours is not None else budget_te * alloc_seconds / 3600
    cid = campaign_id or f"bench-s{seed}-te{budget_te:g}".replace(".", "_")
    seeded = plan_takes_seed(env)
    run = ReaRun(
        campaign_id=cid,
        workspace=str(workspace),
        seed=seed,
        seeded=seeded,
        budget_te=budget_te,
        budget_gpu_hours=gpu_h,
    )
    timeout = timeout_s if timeout_s is not None else 600 + 6 * budget_te * alloc_seconds
    try:
        ensure_workspace(workspace, settings, env)
        plan = ["plan", "--model", model, "--dataset", dataset, "--budget", budget_arg(gpu_h)]
        plan += ["--metric", metric, "--profile", profile, "--id", cid, "--json"]
        if seeded:
            plan += ["--seed", str(seed if plan_seed is None else plan_seed)]
        _ok(rea_cli(workspace, *plan, env=env), "plan")
        _ok(rea_cli(workspace, "approve", cid, "--yes", env=env), "approve")
        _ok(rea_cli(workspace, "launch", cid, env=env), "launch")
        status = wait_for_review(workspace, cid, timeout, env)
    except (ReaCommandError, subprocess.TimeoutExpired, ValueError) as exc:
        run.error = str(exc).splitlines()[0]
        status = _last_status(workspace, cid, env)
    run.state = status.get("state")
    run.spent_gpu_hours = (status.get("budget") or {}).get("spent_gpu_hours")
    campaign_dir = workspace / "campaigns" / cid
    if campaign_dir.is_dir():
        run.trials, run.n_missing_results = read_campaign_trials(campaign_dir, te_seconds, seed)
        _check_data(campaign_dir, expected_data, run)
    if run.error is None:
        run.proposal = status.get("proposal")
        try:
            run.selected_config = selected_config(campaign_dir, run.proposal)
        except (OSError, ValueError, KeyError) as exc:
            run.error = f"cannot build the proposed config: {exc}"
    run.wall_s = time.monotonic() - started
    return run


def _last_status(ws: Path, cid: str, env: dict[str, str] | None) -> dict[str, Any]:
    done = rea_cli(ws, "status", cid, "--json", env=env)
    try:
        out = json.loads(done.stdout) if done.returncode == 0 else {}
    except ValueError:
        out = {}
    return out if isinstance(out, dict) else {}


def _check_data(campaign_dir: Path, expected: dict[str, Any] | None, run: ReaRun) -> None:
    """Warn when rea trained on another split than the benchmark's searches."""
    try:
        data = json.loads((campaign_dir / "plan.json").read_text()).get("data")
    except (OSError, ValueError):
        return
    if expected is not None and data != expected:
        run.warnings.append(
            f"rea's plan trains on {json.dumps(data, sort_keys=True)}, the searches on "
            f"{json.dumps(expected, sort_keys=True)}: the comparison is not on the same split"
        )


def measure_trials_local(
    folder: Path,
    config: dict[str, Any],
    data: dict[str, Any],
    seed: int,
    n: int,
    env: dict[str, str] | None = None,
) -> list[tuple[float, RunResult]]:
    """Run `n` copies of one trial at once exactly as rea's local backend runs a phase's
    array (forked from its runner, `n` at a time): per task, the allocation seconds the
    backend charges (the job's elapsed time) and its result."""
    from rea_cli.executor import backends
    from rea_cli.executor.local import LocalScheduler
    from rea_cli.executor.scheduler import ArrayRequest, Resources, TaskSpec

    folder.mkdir(parents=True, exist_ok=True)
    tasks = []
    for i in range(n):
        trial = folder / f"t{i}"
        spec = TrialSpec(
            trial_id=f"alloc-probe-{i}",
            seed=seed,
            config=config,
            data=data,
            checkpoint_dir=str(trial / "checkpoint"),
            attempts_dir=str(trial / "attempts"),
        )
        trial.mkdir(parents=True, exist_ok=True)
        (trial / "spec.json").write_text(json.dumps(spec.dump(), indent=2))
        tasks.append(
            TaskSpec(backends.trial_argv(trial / "spec.json"), trial, trial / "logs", env or {})
        )
    scheduler = LocalScheduler(folder / "state", max_parallel=n)
    ids = scheduler.submit_array(
        ArrayRequest("rea.alloc-probe", tasks, Resources(time_limit_min=60), n, workdir=folder)
    )
    while True:
        infos = scheduler.states(ids)
        if all(i.state.is_terminal for i in infos.values()):
            break
        time.sleep(0.1)
    out = []
    for job_id, task in zip(ids, tasks, strict=True):
        results = sorted(Path(task.workdir).glob("attempts/*/result.json"))
        if not results:
            raise ReaCommandError(
                f"the probe trial left no result.json ({infos[job_id].state.value}); "
                f"see {task.log_dir}"
            )
        result = _run_result(read_contract(results[-1], AttemptResult))
        out.append((infos[job_id].elapsed_s or 0.0, result))
    return out
