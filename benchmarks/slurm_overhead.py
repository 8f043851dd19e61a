"""Scheduler-level overhead of the Slurm backend, on the local cluster (make slurm-up).

    .venv/bin/python benchmarks/slurm_overhead.py [--rounds 3] [--tasks 8] [--big 200]

1. A phase as the agent submits it: an array of --tasks tiny tasks submitted held, the wake-up
   chained with afterany, then released. Counts sbatch calls per phase (target: 2 per
   array-sized phase, the array + the wake-up) and measures the wake latency, from the last
   task's end to the wake-up's start (both stamped by the commands themselves; target <= 5 s).
2. states() of a --big-task array that has ended (a plain `sbatch --array` of `true`, so the
   figure is the query, not submitit's start-up): Slurm calls per query (squeue, sacct,
   scontrol) and CPU seconds of the query + parsing, in this process and in the Slurm commands
   it ran; first as a fresh resume process would (cluster facts not cached yet), then warm.

Every Slurm command goes through one SlurmRunner, whose call counter gives the counts.
Figures are printed as they come; the last line is one JSON object with all of them.
If the cluster is down the script says so and prints {"skipped": "..."} as its last line.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rea_cli.config import Settings
from rea_cli.executor.backends import wakeup_resources
from rea_cli.executor.scheduler import (
    ArrayRequest,
    JobState,
    Resources,
    TaskSpec,
    WakeupRequest,
    job_name,
    workspace_tag,
)
from rea_cli.executor.slurm import SlurmRunner, SlurmScheduler


def cluster_down() -> str | None:
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"Slurm not reachable: {error}"
    return None if "UP" in ping.stdout else "Slurm is down (bash scripts/slurm-up.sh)"


def wait_terminal(scheduler: SlurmScheduler, ids: list[str], deadline_s: float = 300) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if all(i.state.is_terminal for i in scheduler.states(ids).values()):
            return
        time.sleep(0.25)
    raise SystemExit(f"jobs did not end within {deadline_s:.0f} s")


def phase(scheduler: SlurmScheduler, work: Path, n_tasks: int, round_: int) -> dict[str, float]:
    marks = work / f"round{round_}"
    marks.mkdir(parents=True)
    tasks = [
        TaskSpec(["sh", "-c", f"sleep 0.5; date +%s.%N > {marks}/end.{i}"], work, work / "logs")
        for i in range(n_tasks)
    ]
    tag = workspace_tag(work)
    array = ArrayRequest(
        job_name=job_name(tag, "bench", "validation", round_),
        tasks=tasks,
        resources=Resources(time_limit_min=5, gpus_per_task=1),
        parallelism=n_tasks,
        workdir=work,
        hold=True,
    )
    wakeup = WakeupRequest(
        job_name=job_name(tag, "bench", "validation", round_, wakeup=True),
        argv=["sh", "-c", f"date +%s.%N > {marks}/wake"],
        resources=wakeup_resources(Settings(backend="slurm")),
        log_dir=work / "wake",
        workdir=work / "wake",
    )
    before = Counter(scheduler.runner.calls)
    ids = scheduler.submit_array(array)
    wake = scheduler.submit_wakeup(wakeup, ids)
    scheduler.release(ids)
    sbatch_calls = scheduler.runner.calls["sbatch"] - before["sbatch"]
    wait_terminal(scheduler, [*ids, wake])
    end = time.monotonic() + 30
    while not (marks / "wake").exists() and time.monotonic() < end:
        time.sleep(0.1)
    last_end = max(float((marks / f"end.{i}").read_text()) for i in range(n_tasks))
    latency = float((marks / "wake").read_text()) - last_end
    return {"sbatch_calls": sbatch_calls, "wake_latency_s": latency}


def ended_array(runner: SlurmRunner, work: Path, n: int) -> list[str]:
    result = runner.run(
        [
            "sbatch", "--parsable", f"--array=0-{n - 1}", "--job-name=rea.bench.states.r1",
            "--time=5", f"--output={work}/big-%A_%a.out", "--wrap", "true",
        ]
    )  # fmt: skip
    base = result.stdout.strip().split(";")[0]
    return [f"{base}_{i}" for i in range(n)]


def measured_states(scheduler: SlurmScheduler, ids: list[str]) -> dict[str, Any]:
    before = Counter(scheduler.runner.calls)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    states = scheduler.states(ids)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    calls = {k: v - before[k] for k, v in scheduler.runner.calls.items() if v - before[k]}
    child_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    return {
        "calls": calls,
        "agent_cpu_s": round(cpu, 4),
        "slurm_commands_cpu_s": round(child_cpu, 4),
        "wall_s": round(wall, 3),
        "all_terminal": all(s.state.is_terminal for s in states.values()),
        "completed": sum(s.state is JobState.COMPLETED for s in states.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--big", type=int, default=200)
    args = parser.parse_args()
    down = cluster_down()
    if down:
        print(down)
        print(json.dumps({"skipped": down}))
        return

    work = Path(tempfile.mkdtemp(prefix="rea-slurm-bench-"))
    scheduler = SlurmScheduler(work / "state")
    print(f"work dir {work}")

    phases = [phase(scheduler, work, args.tasks, r) for r in range(1, args.rounds + 1)]
    for r, p in enumerate(phases, 1):
        print(
            f"phase {r}: {args.tasks} tasks, sbatch calls {p['sbatch_calls']:.0f}, "
            f"wake latency {p['wake_latency_s']:.2f} s (last task end -> wake-up start)"
        )
    latencies = [p["wake_latency_s"] for p in phases]

    ids = ended_array(scheduler.runner, work, args.big)
    wait_terminal(scheduler, ids, deadline_s=600)
    time.sleep(3)  # let sacct catch up, as a resume a few seconds later would see it
    cold = measured_states(SlurmScheduler(work / "state"), ids)  # a fresh resume process
    warm = measured_states(scheduler, ids)
    for label, figures in (("cold", cold), ("warm", warm)):
        print(
            f"states() of {args.big} ended tasks ({label}): calls {figures['calls']}, "
            f"agent CPU {figures['agent_cpu_s']:.3f} s, Slurm commands CPU "
            f"{figures['slurm_commands_cpu_s']:.3f} s, wall {figures['wall_s']:.2f} s"
        )

    summary = {
        "sbatch_calls_per_phase": max(p["sbatch_calls"] for p in phases),
        "sbatch_calls_per_phase_target": 2,
        "wake_latency_s_median": round(statistics.median(latencies), 3),
        "wake_latency_s_max": round(max(latencies), 3),
        "wake_latency_s_target": 5.0,
        "phase_tasks": args.tasks,
        "rounds": args.rounds,
        "states_tasks": args.big,
        "states_calls_cold": cold["calls"],
        "states_calls_warm": warm["calls"],
        "states_agent_cpu_s_cold": cold["agent_cpu_s"],
        "states_agent_cpu_s_warm": warm["agent_cpu_s"],
        "states_slurm_commands_cpu_s_warm": warm["slurm_commands_cpu_s"],
        "states_wall_s_warm": warm["wall_s"],
        "states_all_terminal": warm["all_terminal"],
    }
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
