"""Agent CPU seconds of one resume step after a 200-trial phase (target <= 2 s beyond start-up).

Builds a real workspace and campaign, submits a ~200-trial validation phase to a recording
scheduler (jobs "end" at once; each trial's attempt folder gets a result.json like the trainer
writes), then times `rea resume` in a fresh interpreter: reconcile, ingest, diagnose, gate, submit
the next phase, DuckDB sync and analyst publish. The reference measured in the same run is the
bare interpreter start-up plus `import rea_cli.cli.main`. The Slurm side (squeue/sacct per
resume) is measured on the real cluster by benchmarks/slurm_overhead.py.

Last line: one JSON object with the figures.
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rea_cli.executor.scheduler import (
    ArrayRequest,
    JobInfo,
    JobState,
    Resources,
    SubmissionRequest,
    WakeupRequest,
)

ROOT = Path(__file__).resolve().parent.parent


class RecordingScheduler:
    """Accepts submissions; every job has ended COMPLETED when asked. State kept in a file so
    the timed resume (another process) sees the same jobs."""

    name = "bench"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.jobs: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}

    def _save(self) -> None:
        self.path.write_text(json.dumps(self.jobs))

    def submit_array(self, request: ArrayRequest) -> list[str]:
        base = len(self.jobs) + 1
        ids = [f"{base}_{i}" for i in range(len(request.tasks))]
        for jid, t in zip(ids, request.tasks, strict=True):
            self.jobs[jid] = {"name": request.job_name, "gpus": request.resources.gpus_per_task}
            _write_attempt(Path(t.argv[-1]).parent, jid)
        self._save()
        return ids

    def submit_wakeup(self, request: WakeupRequest, after: Sequence[str]) -> str:
        jid = str(len(self.jobs) + 1)
        self.jobs[jid] = {"name": request.job_name, "gpus": 0}
        self._save()
        return jid

    def render(self, request: SubmissionRequest) -> list[tuple[str, str]]:
        tasks = "\n".join(" ".join(map(str, t.argv)) for t in request.array.tasks)
        return [("array", tasks), ("wake-up", " ".join(map(str, request.wakeup.argv)))]

    def enforced_limit_min(self, time_limit_min: float) -> float:
        return time_limit_min  # jobs "end" at once: nothing runs past its limit

    def max_mem_gb(self, resources: Resources) -> float | None:
        return None  # no memory limit: no out-of-memory kill to retry

    def release(self, job_ids: Sequence[str]) -> None:
        pass

    def states(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        now = datetime.now(UTC)
        return {
            j: JobInfo(
                j,
                self.jobs.get(j, {}).get("name", ""),
                JobState.COMPLETED,
                exit_code=0,
                node="n1",
                started_at=now,
                ended_at=now,
                elapsed_s=30.0,
                gpus=self.jobs.get(j, {}).get("gpus", 0),
            )
            for j in job_ids
        }

    def find(self, name_prefix: str) -> list[JobInfo]:
        return []

    def cancel(self, job_ids: Sequence[str]) -> None:
        pass


def _write_attempt(trial_dir: Path, job_id: str) -> None:
    """What the trainer leaves, written through its contract models."""
    from ranking_models.contracts import AttemptResult, AttemptStart, EpochRecord

    folder = trial_dir / "attempts" / "1"
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(job_id)
    metrics = {
        "auc": 0.75 + rng.random() * 0.02,
        "logloss": 0.5,
        "ne": 0.8,
        "ne_eval": 0.8,
        "calibration": 1.0,
    }
    start = AttemptStart(attempt=1, trial_id=trial_dir.name, job_id=job_id)
    (folder / "attempt.json").write_text(json.dumps(start.model_dump(mode="json")))
    lines = [json.dumps({"event": "train", "epoch": 0, "step": s, "loss": 0.5}) for s in range(20)]
    lines.append(json.dumps({"event": "eval", "epoch": 0, "split": "valid", **metrics}))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    result = AttemptResult(
        trial_id=trial_dir.name,
        attempt=1,
        job_id=job_id,
        status="succeeded",
        valid=metrics,
        test=metrics,
        epochs_completed=1,
        best_epoch=0,
        curve=[EpochRecord(epoch=0, train_loss=0.5, valid=metrics)],
        wall_time_s=30.0,
        device_time_s=25.0,
        samples_seen=16_000,
    )
    (folder / "result.json").write_text(json.dumps(result.dump()))


_TIMED = """
import resource, sys, time
t0 = resource.getrusage(resource.RUSAGE_SELF)
from pathlib import Path
sys.path.insert(0, {bench!r})
from resume_overhead import RecordingScheduler
from rea_cli.workspace import Workspace
from rea_cli.app.resume import resume_campaign
ws = Workspace(Path({ws!r}))
t1 = resource.getrusage(resource.RUSAGE_SELF)
out = resume_campaign(ws, "bench", RecordingScheduler(Path({state!r})))
t2 = resource.getrusage(resource.RUSAGE_SELF)
cpu = lambda r: r.ru_utime + r.ru_stime
print(out.action, cpu(t1) - cpu(t0), cpu(t2) - cpu(t1))
"""


def _child_cpu(cmd: list[str]) -> tuple[float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), out


def main() -> None:
    from rea_cli.app.lifecycle import approve_campaign
    from rea_cli.app.planning import plan_campaign
    from rea_cli.app.resume import advance, load_plan, resume_campaign
    from rea_cli.campaign.state import CampaignState
    from rea_cli.campaign.store import CampaignStore
    from rea_cli.workspace import init_workspace

    tmp = Path(tempfile.mkdtemp(prefix="rea-bench-"))
    ws = init_workspace(tmp / "ws", backend="local")
    config = ws.config_path.read_text().replace("max_hypotheses = 8", "max_hypotheses = 12")
    config = config.replace("validation_seeds = 2", "validation_seeds = 16")
    ws.config_path.write_text(config)
    ws = type(ws)(ws.root)
    plan_campaign(
        ws,
        model="dcn_v2",
        dataset="synthetic",
        budget_gpu_hours=1000,
        profile="tiny",
        campaign_id="bench",
    )
    approve_campaign(ws, "bench")
    store = CampaignStore(ws, "bench")
    c = store.load()
    plan = load_plan(store)
    sched = RecordingScheduler(tmp / "jobs.json")
    store.transition(c, CampaignState.RUNNING)
    advance(store, plan, c, sched)  # the probe: the baseline on 16 seeds
    resume_campaign(ws, "bench", RecordingScheduler(tmp / "jobs.json"))  # the screen: 12 x 16
    c = store.load()
    trials = c.phases["validation"].rounds[-1].trial_ids

    start_cpu, _ = _child_cpu([sys.executable, "-c", "pass"])
    import_cpu, _ = _child_cpu([sys.executable, "-c", "import rea_cli.cli.main"])
    script = _TIMED.format(
        bench=str(Path(__file__).parent), ws=str(ws.root), state=str(tmp / "jobs.json")
    )
    total_cpu, out = _child_cpu([sys.executable, "-c", script])
    action, imports_s, step_s = out.split()
    figures = {
        "phase_trials": len(trials),
        "resume_action": action,
        "resume_total_cpu_s": round(total_cpu, 3),
        "resume_step_cpu_s": round(float(step_s), 3),
        "resume_imports_cpu_s": round(float(imports_s), 3),
        "interpreter_start_cpu_s": round(start_cpu, 3),
        "cli_import_cpu_s": round(import_cpu, 3),
        "beyond_interpreter_start_cpu_s": round(total_cpu - start_cpu, 3),
        "target_beyond_start_s": 2.0,
    }
    for k, v in figures.items():
        print(f"{k:32s} {v}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
