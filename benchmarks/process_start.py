"""Process start of a trial on the local backend: forked from the runner vs a new interpreter.

For N tiny trials (synthetic data, 1 epoch, 1 torch thread, one at a time) it measures the start
overhead of each trial (process start -> first training step) and the CPU seconds of the whole
trial process, three ways:

- reference: `python -m ranking_models.train SPEC` run as a plain subprocess;
- fork: through the real LocalScheduler, which forks trials from a runner that imported the
  trainer once (the product path; the runner's one import is counted, spread over the N trials);
- exec: through the LocalScheduler with REA_LOCAL_FORK=0 (a new interpreter per trial).

Start -> first step is result.json's `startup_s` where the trainer writes it; otherwise it is
estimated as the wall time of the first `train` event of metrics.jsonl (logged every step; its
wall time is the file's mtime minus the trainer-reported time between it and the last event)
minus the process start (the subprocess's launch; the job record's start for the scheduler).
The CPU of the scheduler paths is everything the submission ran (runner and trials, reaped by
this process as a subreaper). Ratios are against the reference measured in the same run.

    python benchmarks/process_start.py [--trials 6]

Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ranking_models.config import apply_delta, default_config
from rea_cli.executor import backends
from rea_cli.executor.local import LocalScheduler
from rea_cli.executor.scheduler import ArrayRequest, Resources, TaskSpec

TARGET_START_S = 0.4
DATA = {"name": "synthetic", "n_rows": 4000, "n_categorical": 4, "n_numerical": 2}
TRIAL_ENV = {"REA_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1", "REA_DEVICE": "cpu"}
_PR_SET_CHILD_SUBREAPER = 36


def write_spec(folder: Path, trial_id: str) -> Path:
    trial = folder / trial_id
    trial.mkdir(parents=True)
    delta = {
        "train.epochs": 1,
        "train.batch_size": 256,
        "train.log_every_steps": 1,
        "model.embedding_dim": 8,
    }
    spec = {
        "schema": 1,
        "campaign_id": "bench",
        "trial_id": trial_id,
        "hypothesis_id": "baseline",
        "phase": "validation",
        "seed": 0,
        "config": apply_delta(default_config("dcn_v2"), delta),
        "data": DATA,
        "checkpoint_dir": str(trial / "checkpoint"),
        "attempts_dir": str(trial / "attempts"),
    }
    path = trial / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def start_to_first_step(spec: Path, started_at: float) -> tuple[float, str]:
    """(seconds, how measured) from the process start to the trial's first training step."""
    attempt = spec.parent / "attempts" / "1"
    result = json.loads((attempt / "result.json").read_text())
    if result.get("status") != "succeeded":
        raise RuntimeError(f"trial {spec.parent.name} failed: {result.get('failure')}")
    if result.get("startup_s") is not None:
        return float(result["startup_s"]), "result.json startup_s"
    path = attempt / "metrics.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    first = next(e for e in events if e["event"] == "train")
    first_wall = path.stat().st_mtime - (events[-1]["time"] - first["time"])
    return first_wall - started_at, "metrics.jsonl (estimated)"


def import_cpu() -> float:
    """CPU seconds an exec'd trial spends importing what the runner imports once."""
    code = (
        "import torch, ranking_models.train, ranking_models.trainer, ranking_models.data.processing"
    )
    cpu0 = children_cpu()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = children_cpu() - cpu0
    subprocess.run([sys.executable, "-c", code], env={**os.environ, **TRIAL_ENV}, check=True)
    return children_cpu() - cpu0 - 2 * bare


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_reference(folder: Path, n: int) -> tuple[list[float], float, str]:
    starts, how = [], ""
    cpu0 = children_cpu()
    for i in range(n):
        spec = write_spec(folder, f"t{i}")
        t0 = time.time()
        subprocess.run(
            backends.trial_argv(spec),
            cwd=spec.parent,
            env={**os.environ, **TRIAL_ENV},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            check=True,
        )
        start, how = start_to_first_step(spec, t0)
        starts.append(start)
    return starts, (children_cpu() - cpu0) / n, how


def run_scheduler(folder: Path, n: int, fork: bool) -> tuple[list[float], float | None, str]:
    env = TRIAL_ENV if fork else {**TRIAL_ENV, "REA_LOCAL_FORK": "0"}
    specs = [write_spec(folder, f"t{i}") for i in range(n)]
    tasks = [TaskSpec(backends.trial_argv(s), s.parent, s.parent / "logs", env) for s in specs]
    scheduler = LocalScheduler(folder / "state")
    cpu0 = children_cpu()
    ids = scheduler.submit_array(
        ArrayRequest("bench.process-start", tasks, Resources(), 1, workdir=Path("/tmp"))
    )
    states = wait_ended(scheduler, ids)
    bad = {j: (i.state.value, i.reason) for j, i in states.items() if i.exit_code != 0}
    if bad:
        raise RuntimeError(f"trials did not complete: {bad}; logs under {folder}")
    cpu = (children_cpu() - cpu0) / n if reap_runner(scheduler, ids[0]) else None
    starts, how = [], ""
    for job_id, spec in zip(ids, specs, strict=True):
        started = states[job_id].started_at
        assert started is not None
        start, how = start_to_first_step(spec, started.timestamp())
        starts.append(start)
    return starts, cpu, how


def wait_ended(scheduler: LocalScheduler, ids: list[str]) -> dict[str, Any]:
    end = time.monotonic() + 300
    while True:
        states = scheduler.states(ids)
        if all(i.state.is_terminal for i in states.values()):
            return states
        if time.monotonic() > end:
            raise RuntimeError(f"trials still running after 300 s: {states}")
        time.sleep(0.1)


def reap_runner(scheduler: LocalScheduler, job_id: str) -> bool:
    """Wait for the detached runner (re-parented to us) so its CPU, and that of the trials it
    reaped, counts in RUSAGE_CHILDREN. False if it is not our child (no subreaper)."""
    record = scheduler.store.read(job_id)
    if record is None or record.runner is None:
        return False
    try:
        os.waitpid(record.runner.pid, 0)
    except ChildProcessError:
        return False
    return True


def become_subreaper() -> bool:
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="trials per way (default 6)")
    args = parser.parse_args()
    n = args.trials
    if not become_subreaper():
        print("not a subreaper (Linux only): the scheduler paths' CPU is not measured")
    with tempfile.TemporaryDirectory(prefix="rea-bench-start-") as tmp:
        root = Path(tmp)
        os.environ["REA_DATA_DIR"] = str(root / "data")  # the trials' own dataset cache
        run_reference(root / "warm-up", 1)  # builds the data cache, warms the page cache
        ways: dict[str, Callable[[Path], tuple[list[float], float | None, str]]] = {
            "reference": lambda f: run_reference(f, n),
            "fork": lambda f: run_scheduler(f, n, fork=True),
            "exec": lambda f: run_scheduler(f, n, fork=False),
        }
        figures: dict[str, Any] = {"trials": n, "trainer_import_cpu_s": round(import_cpu(), 3)}
        print(f"importing torch and the trainer: {figures['trainer_import_cpu_s']:.2f} CPU-s")
        for name, run in ways.items():
            t0 = time.monotonic()
            starts, cpu, how = run(root / name)
            wall = time.monotonic() - t0
            figures[f"{name}_start_s_median"] = round(statistics.median(starts), 3)
            figures[f"{name}_start_s_max"] = round(max(starts), 3)
            figures[f"{name}_cpu_s_per_trial"] = round(cpu, 3) if cpu is not None else None
            figures[f"{name}_wall_s"] = round(wall, 1)
            figures["start_measured_by"] = how
            cpu_text = f"{cpu:.2f} CPU-s" if cpu is not None else "CPU n/a (no subreaper)"
            print(
                f"{name:>9}: start -> first step median {statistics.median(starts):.3f} s "
                f"(max {max(starts):.3f}) | {cpu_text} per trial | {wall:.1f} s for {n} trials"
            )
    ref_start, ref_cpu = figures["reference_start_s_median"], figures["reference_cpu_s_per_trial"]
    for name in ("fork", "exec"):
        figures[f"{name}_start_ratio"] = round(figures[f"{name}_start_s_median"] / ref_start, 2)
        cpu = figures[f"{name}_cpu_s_per_trial"]
        figures[f"{name}_cpu_ratio"] = round(cpu / ref_cpu, 2) if cpu is not None else None
    figures["target_start_s"] = TARGET_START_S
    figures["fork_meets_target"] = figures["fork_start_s_median"] <= TARGET_START_S
    print(
        f"fork vs reference: start x{figures['fork_start_ratio']}, "
        f"CPU x{figures['fork_cpu_ratio']} (runner's one import included); "
        f"start measured by {figures['start_measured_by']}; target <= {TARGET_START_S} s: "
        f"{'met' if figures['fork_meets_target'] else 'NOT met'}"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
