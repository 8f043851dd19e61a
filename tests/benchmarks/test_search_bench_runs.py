"""The benchmark with real training: the in-process worker, bad input, and (slow) whole runs of
the script on a tiny BYO data set whose last line must parse as the documented JSON object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import search_efficiency
from benchmarks.searchbench import worker
from benchmarks.searchbench.report import BenchLine
from ranking_models.config import apply_delta, default_config
from tests.benchmarks.bench_helpers import write_tiny_byo

ROOT = Path(__file__).resolve().parents[2]
TINY = {"name": "synthetic", "n_rows": 3000, "n_categorical": 3, "n_numerical": 2, "vocab_size": 40}
TINY_REA = """
[planner]
max_hypotheses = 2
exploitation_batch = 2
stall_batches = 1
search_rounds = 1
"""


def test_worker_counts_device_time_of_finished_and_diverged_runs() -> None:
    worker.init_worker(TINY, threads=1)
    base = apply_delta(default_config("dcn_v2"), {"train.monitor": "ne", "train.epochs": 2})
    ok = worker.run(base, seed=0)
    assert ok.status == "succeeded" and ok.device_time_s > 0
    assert ok.samples_seen == 2 * 2400 and ok.epochs_completed == 2
    assert ok.metric("valid") is not None and ok.metric("test") is not None
    assert ok.startup_s is not None and ok.startup_s < ok.device_time_s + 5
    assert ok.started_at is not None and ok.ended_at is not None
    assert ok.ended_at - ok.started_at >= ok.device_time_s
    again = worker.run(base, seed=0)
    assert again.valid == ok.valid  # the same config and seed train the same model
    boom = apply_delta(base, {"train.lr_dense": 1e3, "train.lr_sparse": 1e3})
    failed = worker.run(boom, seed=0)
    assert failed.status == "failed" and failed.failure and "explosion" in failed.failure
    assert failed.device_time_s > 0 and failed.metric("valid") is None


def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert search_efficiency.main(["--dataset", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --dataset: unknown dataset 'nope'") and "\n" not in err
    assert search_efficiency.main(["--dataset", "movielens-100k", "--budget", "0,x"]) == 2
    assert "--budget" in capsys.readouterr().err
    assert search_efficiency.main(["--dataset", "movielens-100k", "--methods", "tpe,grid"]) == 2
    assert "--methods" in capsys.readouterr().err


def _bench(tmp_path: Path, *args: str) -> tuple[BenchLine, str]:
    schema = write_tiny_byo(tmp_path / "data")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REA_DEVICE": "cpu"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "search_efficiency.py")]
    cmd += ["--dataset", str(schema), "--out", str(tmp_path / "out"), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    return BenchLine.model_validate(json.loads(last)), done.stdout


@pytest.mark.slow
def test_whole_run_with_tpe_and_random(tmp_path: Path) -> None:
    line, out = _bench(
        tmp_path,
        "--budget",
        "2,3",
        "--seeds",
        "1",
        "--retrain-seeds",
        "2",
        "--methods",
        "tpe,random",
    )
    assert "tpe seed 0:" in out and "random seed 0:" in out
    assert set(line.results) == {"2", "3"} and set(line.results["2"]) == {"tpe", "random"}
    for budget, per_method in line.results.items():
        for result in per_method.values():
            assert result.te_used is not None and result.te_used <= float(budget) + 1e-9
            assert result.test_gain.n == 2 and result.test_gain.mean is not None
    assert line.te_seconds > 0 and line.baseline.test_ne is not None
    assert line.ratios == {} and line.warm_start is None and not line.errors
    log = json.loads(Path(line.log_file or "").read_text())
    searched = [t for t in log["trials"] if t["method"] == "tpe"]
    assert searched[0]["config"]["train"]["monitor"] == "ne"
    assert searched[-1]["cum_te"] >= 3.0  # each search ran to the largest budget
    assert log["summary"] == line.model_dump(mode="json")


@pytest.mark.slow
def test_whole_run_with_a_rea_campaign(tmp_path: Path) -> None:
    """The rea plumbing: a tiny campaign on a fixed budget (2 TE cannot hold rea's probe and
    5-seed confirmation), then the warm-start campaign with another seed."""
    settings = tmp_path / "rea-settings.toml"
    settings.write_text(TINY_REA)
    line, _ = _bench(
        tmp_path,
        "--budget",
        "2",
        "--seeds",
        "1",
        "--retrain-seeds",
        "2",
        "--methods",
        "tpe,rea",
        "--rea-profile",
        "tiny",
        "--rea-settings",
        str(settings),
        "--rea-budget-gpu-h",
        "4",
    )
    assert not line.errors, line.errors
    rea = line.results["2"]["rea"]
    assert rea.te_used is not None and rea.te_used > 0 and rea.n_trials and rea.n_trials >= 3
    assert rea.start_overhead_s and rea.start_overhead_s > 0  # process starts, from result.json
    assert line.alloc_seconds and line.alloc_seconds > 0
    assert "rea/tpe" in line.ratios["2"]
    assert line.at_rea_compute["2"]["tpe"].test_gain.n == 2
    assert line.warm_start is not None and line.warm_start.second_budget_te == 1
    assert line.warm_start.second_te_used and line.warm_start.second_te_used > 0
    log = json.loads(Path(line.log_file or "").read_text())
    assert {t["method"] for t in log["trials"]} == {"tpe", "rea", "rea-warm"}
    assert all(r["state"] == "AWAITING_REVIEW" for r in log["rea_runs"])
    # each campaign trains on its own seeds, none on the retrain seeds
    seeds = {m: {t["seed"] for t in log["trials"] if t["method"] == m} for m in ("rea", "rea-warm")}
    assert seeds["rea"] and seeds["rea-warm"] and not seeds["rea"] & seeds["rea-warm"]
    assert not (seeds["rea"] | seeds["rea-warm"]) & set(line.retrain_seeds)


@pytest.mark.slow
def test_searches_on_the_pool_take_clock_readings_between_trials() -> None:
    from benchmarks.searchbench.accounting import Clock
    from benchmarks.searchbench.searches import CLOCK_SEED_BASE, Search, run_searches
    from benchmarks.searchbench.worker import TrainingPool, config_key

    base = apply_delta(default_config("dcn_v2"), {"train.monitor": "ne", "train.epochs": 1})
    pool = TrainingPool(TINY, workers=2)
    try:
        clock = Clock()
        clock.add(pool.result(base, 0))  # the first run also loads the data
        started = time.monotonic()
        clock.add(pool.result(base, 1))
        one_run_s = time.monotonic() - started
        searches = [Search(m, s, base) for m in ("tpe", "random") for s in (0, 1)]
        done: list[Search] = []
        # the clock's period on the scale of this machine's runs: dozens of runs take several
        # periods however fast the machine is
        run_searches(pool, searches, clock, 40.0, done.append, clock_every_s=2 * one_run_s)
        assert sorted((s.method, s.seed) for s in done) == sorted(
            (s.method, s.seed) for s in searches
        )
        assert all(s.trials[-1].cum_te >= 40.0 for s in searches)
        ticks = [json.loads(k)["seed"] for k in pool.futures if json.loads(k)["seed"] >= 2000]
        assert ticks and min(ticks) == CLOCK_SEED_BASE
        assert len(clock.readings) == 2 + len(ticks)
        assert config_key(base, CLOCK_SEED_BASE) in pool.futures
        # trial 0 of both methods on a seed is one run: the pool trained it once
        assert searches[0].trials[0].result == searches[2].trials[0].result
    finally:
        pool.close()
