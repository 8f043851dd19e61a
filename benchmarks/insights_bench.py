"""Insights DB figures: ingest, publish, analyst query, each beside the naive way, same run.

    .venv/bin/python benchmarks/insights_bench.py [--trials 10000] [--naive-trials 200]

1. Ingest of N trial results, as at a wake-up: N trials were submitted and synced (spec.json
   each, campaign.json), then every trial left attempt.json, metrics.jsonl (3 lines) and
   result.json and campaign.json got the job records; one sync_campaign ingests it all, end to
   end, then split into reading the files and writing the DB. Also: a re-sync with nothing new,
   and the first index of the whole finished campaign on a fresh DB. The naive way writes the same
   rows with row-by-row executemany (INSERT ... ON CONFLICT per row); it is so slow that it is
   measured on the results of the first --naive-trials trials and extrapolated linearly (the
   set-based way is measured on the same sample too).
2. Publish with 1M metric rows: checkpoint + copy + atomic rename, beside a logical copy
   (ATTACH + COPY FROM DATABASE).
3. An analyst group-by over the 1M metric rows on the published copy: cold (new connection),
   warm (median of 5), beside fetching the rows into Python and grouping there.

Figures are printed as they come; the last line is one JSON object with all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb

from rea_cli.insights import init_db, publish, sync_campaign
from rea_cli.insights.db import connect, migrate
from rea_cli.insights.files import Collected, collect_campaign
from rea_cli.insights.ingest import load_file_index, write_collected

T0 = "2026-11-22T10:00:00+00:00"
HYPOTHESES = ("baseline", "emb32", "lr3", "wide", "deep")


def _dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, sort_keys=True), encoding="utf-8")


def _trial_ids(n_trials: int) -> list[tuple[str, str, int]]:
    out = []
    for i in range(n_trials):
        hid, seed = HYPOTHESES[i % len(HYPOTHESES)], i // len(HYPOTHESES)
        out.append((f"validation-{hid}-s{seed}", hid, seed))
    return out


def _job_id(i: int) -> str:
    return f"{1000 + i // 1000}_{i % 1000}"


def _campaign_doc(cid: str, trials: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": 1,
        "campaign_id": cid,
        "created_at": T0,
        "created_by": "bench",
        "state": "RUNNING",
        "phase": "validation",
        "model_family": "dcn_v2",
        "dataset": "synthetic",
        "metric": "auc",
        "direction": "max",
        "backend": "local",
        "plan_hash": "sha256:0",
        "budget": {"approved_gpu_hours": 100.0},
        "hypotheses": {
            h: {
                "title": h,
                "source": "baseline" if h == "baseline" else "research_kb",
                "delta": {} if h == "baseline" else {"x": h},
            }
            for h in HYPOTHESES
        },
        "phases": {"validation": {"status": "submitted", "rounds": []}},
        "trials": trials,
    }


def submit_campaign(root: Path, n_trials: int) -> Path:
    """What the agent writes when it submits n_trials: spec.json each, campaign.json."""
    cid = "c-bench"
    folder = root / "campaigns" / cid
    trials: dict[str, Any] = {}
    for tid, hid, seed in _trial_ids(n_trials):
        (folder / "trials" / tid / "attempts").mkdir(parents=True)
        _dump(
            folder / "trials" / tid / "spec.json",
            {
                "schema": 1,
                "campaign_id": cid,
                "trial_id": tid,
                "hypothesis_id": hid,
                "phase": "validation",
                "seed": seed,
                "config": {
                    "model": {"family": "dcn_v2", "embedding_dim": 16},
                    "train": {"epochs": 1, "data_fraction": 0.5},
                },
                "data": {"name": "synthetic", "n_rows": 20000},
            },
        )
        trials[tid] = {
            "phase": "validation",
            "hypothesis_id": hid,
            "seed": seed,
            "fidelity": {"train.data_fraction": 0.5},
            "status": "submitted",
            "jobs": [],
        }
    _dump(folder / "campaign.json", _campaign_doc(cid, trials))
    return folder


def finish_trials(folder: Path, n_trials: int) -> None:
    """What the trials and the next wake-up leave: attempt.json, metrics.jsonl (3 lines) and
    result.json per trial; campaign.json with the job records and statuses."""
    trials: dict[str, Any] = {}
    train = {"event": "train", "epoch": 0, "loss": 0.6, "grad_norm": 1.3, "lr": 0.001}
    for i, (tid, hid, seed) in enumerate(_trial_ids(n_trials)):
        attempt = folder / "trials" / tid / "attempts" / "1"
        attempt.mkdir()
        job_id = _job_id(i)
        started = {"attempt": 1, "job_id": job_id, "host": "n1", "pid": 1, "started_at": T0}
        _dump(attempt / "attempt.json", started)
        auc = 0.78 + (i % 97) * 1e-4
        with open(attempt / "metrics.jsonl", "w", encoding="utf-8") as fh:
            for step in (50, 100):
                fh.write(json.dumps({**train, "step": step, "time": step / 20}) + "\n")
            fh.write(json.dumps({"event": "eval", "split": "valid", "auc": auc}) + "\n")
        values = {"auc": auc, "logloss": 0.55, "ne": 0.8, "ne_eval": 0.81, "calibration": 1.0}
        _dump(
            attempt / "result.json",
            {
                **started,
                "schema": 1,
                "trial_id": tid,
                "status": "succeeded",
                "failure": None,
                "valid": values,
                "test": values,
                "epochs_completed": 1,
                "resumed_from_epoch": 0,
                "ended_at": T0,
                "wall_time_s": 12.0,
                "samples_per_s": 8e4,
                "peak_memory_mb": 600.0,
                "n_params": 123456,
                "device": "cpu",
                "versions": {"python": "3.11"},
            },
        )
        job = {"job_id": job_id, "round": 1, "state": "COMPLETED", "exit_code": 0, "node": "n1",
               "gpu_seconds": 12.0, "gpus": 1, "time_limit_min": 30}  # fmt: skip
        trials[tid] = {
            "phase": "validation",
            "hypothesis_id": hid,
            "seed": seed,
            "fidelity": {"train.data_fraction": 0.5},
            "status": "succeeded",
            "jobs": [job],
        }
    _dump(folder / "campaign.json", _campaign_doc(folder.name, trials))


def n_rows(collected: Collected) -> int:
    return sum(len(r.by_key) for r in collected.tables.values())


def naive_executemany(db: Path, collected: Collected) -> float:
    """The same upserts, one row at a time through executemany."""
    init_db(db)
    con = duckdb.connect(str(db))
    start = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    for rows in collected.tables.values():
        if not rows.by_key:
            continue
        cols = ", ".join(rows.columns)
        marks = ", ".join("?" for _ in rows.columns)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in rows.columns if c not in rows.key)
        con.executemany(
            f"INSERT INTO {rows.table} ({cols}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(rows.key)}) DO UPDATE SET {updates}",
            [list(v) for v in rows.by_key.values()],
        )
    con.execute("COMMIT")
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed


def set_based(db: Path, collected: Collected) -> float:
    init_db(db)
    with connect(db, read_only=False) as con:
        migrate(con)
        start = time.perf_counter()
        write_collected(con, collected)
        return time.perf_counter() - start


def sample(collected: Collected, n_trials: int) -> Collected:
    """The rows of the first n_trials trials (and the campaign-level rows)."""
    keep = sorted({k[1] for k in collected.tables["attempts:result"].by_key})[:n_trials]
    keep_set = set(keep)
    out = Collected(collected.campaign_id)
    for name, rows in collected.tables.items():
        copy = type(rows)(rows.table, rows.key, rows.columns, False)
        trial_pos = rows.key.index("trial_id") if "trial_id" in rows.key else None
        for key, values in rows.by_key.items():
            if trial_pos is None or key[trial_pos] in keep_set:
                copy.by_key[key] = values
        out.tables[name] = copy
    return out


def bench_ingest(tmp: Path, n_trials: int, naive_trials: int) -> dict[str, Any]:
    ws = tmp / "ws"
    db, analyst = ws / "insights.duckdb", ws / "analyst.duckdb"
    folder = submit_campaign(ws, n_trials)
    start = time.perf_counter()
    sync_campaign(db, folder, analyst_path=analyst)
    submit_s = time.perf_counter() - start
    print(f"sync after submitting {n_trials} trials (spec.json each): {submit_s:.3f}s")

    start = time.perf_counter()
    finish_trials(folder, n_trials)
    print(f"wrote {n_trials} trial results (3 files each) in {time.perf_counter() - start:.1f}s")
    before = tmp / "before-results.duckdb"
    shutil.copyfile(db, before)

    start = time.perf_counter()
    report = sync_campaign(db, folder, analyst_path=analyst)
    sync_s = time.perf_counter() - start
    assert not report.warnings and report.published, report.warnings[:3]
    print(
        f"INGEST of {n_trials} trial results: sync_campaign end to end (+ publish): {sync_s:.3f}s"
    )

    # the same step again on a copy of the DB as it was, split into its two parts
    with connect(before, read_only=False) as con:
        known = load_file_index(con, folder.name)
    start = time.perf_counter()
    collected = collect_campaign(folder, folder.name, known)
    read_s = time.perf_counter() - start
    with connect(before, read_only=False) as con:
        start = time.perf_counter()
        write_collected(con, collected)
        write_s = time.perf_counter() - start
    rows = n_rows(collected) + len(collected.files)
    print(f"  reading + parsing {collected.files_read} changed files: {read_s:.3f}s")
    print(f"  set-based upsert, one transaction, {rows} rows (incl. file index): {write_s:.3f}s")

    start = time.perf_counter()
    resync = sync_campaign(db, folder)
    resync_s = time.perf_counter() - start
    assert not resync.changed
    print(f"  re-sync with nothing changed: {resync_s:.3f}s")

    start = time.perf_counter()
    everything = collect_campaign(folder, folder.name, {})
    full_read_s = time.perf_counter() - start
    full_write_s = set_based(tmp / "full.duckdb", everything)
    print(
        f"first index of the finished campaign on a fresh DB: read {full_read_s:.3f}s + write "
        f"{full_write_s:.3f}s ({n_rows(everything) + len(everything.files)} rows)"
    )

    part = sample(collected, naive_trials)
    part_rows = n_rows(part)
    naive_s = naive_executemany(tmp / "naive.duckdb", part)
    set_part_s = set_based(tmp / "set-sample.duckdb", part)
    scale = n_trials / naive_trials
    print(
        f"naive executemany, results of {naive_trials} trials ({part_rows} rows): {naive_s:.2f}s "
        f"({part_rows / naive_s:.0f} rows/s) -> {naive_s * scale:.1f}s extrapolated to "
        f"{n_trials}; set-based on the same sample: {set_part_s:.3f}s"
    )
    return {
        "trials": n_trials,
        "results_rows": rows,
        "results_ingest_end_to_end_s": round(sync_s, 3),
        "results_read_files_s": round(read_s, 3),
        "results_db_write_s": round(write_s, 3),
        "submission_sync_s": round(submit_s, 3),
        "resync_unchanged_s": round(resync_s, 3),
        "full_index_read_s": round(full_read_s, 3),
        "full_index_write_s": round(full_write_s, 3),
        "naive_sample_trials": naive_trials,
        "naive_sample_s": round(naive_s, 3),
        "naive_rows_per_s": round(part_rows / naive_s),
        "naive_extrapolated_s": round(naive_s * scale, 1),
        "set_based_sample_s": round(set_part_s, 3),
    }


def build_metrics_db(db: Path, n: int) -> None:
    init_db(db)
    con = duckdb.connect(str(db))
    con.execute(
        f"""
        INSERT INTO metrics (campaign_id, trial_id, attempt, line, split, event, epoch, step,
                             loss, grad_norm, lr, time, auc, logloss)
        SELECT 'c-' || (i // 100000), 'trial-' || (i // 100), 1, i % 100 + 1,
               CASE WHEN i % 10 = 0 THEN 'valid' ELSE 'train' END,
               CASE WHEN i % 10 = 0 THEN 'eval' ELSE 'train' END,
               (i % 100) // 10, (i % 100) * 50, 0.7 - (i % 100) * 0.001, 1.0 + (i % 7) * 0.1,
               0.001, (i % 100) * 0.5, CASE WHEN i % 10 = 0 THEN 0.75 + (i % 97) * 1e-4 END,
               CASE WHEN i % 10 = 0 THEN 0.5 END
        FROM range({n}) t(i)
        """
    )
    con.close()


GROUP_BY = (
    "SELECT trial_id, count(*) AS n, min(loss) AS best_loss, max(auc) AS best_auc "
    "FROM metrics GROUP BY trial_id"
)


def bench_publish_and_query(tmp: Path, n: int) -> dict[str, Any]:
    db, analyst = tmp / "big.duckdb", tmp / "big-analyst.duckdb"
    build_metrics_db(db, n)
    times = [publish(db, analyst) for _ in range(3)]
    size_mb = analyst.stat().st_size / 1e6
    publish_s = statistics.median(times)
    print(f"publish with {n} metric rows ({size_mb:.0f} MB): {publish_s:.3f}s (median of 3)")

    logical = tmp / "logical.duckdb"
    con = duckdb.connect(str(db))
    start = time.perf_counter()
    con.execute(f"ATTACH '{logical}' AS logical")
    con.execute("COPY FROM DATABASE big TO logical")
    con.execute("DETACH logical")
    logical_s = time.perf_counter() - start
    con.close()
    print(f"  naive: logical copy (ATTACH + COPY FROM DATABASE): {logical_s:.3f}s")

    start = time.perf_counter()
    con = duckdb.connect(str(analyst), read_only=True)
    groups = len(con.execute(GROUP_BY).fetchall())
    cold_ms = (time.perf_counter() - start) * 1e3
    warm = []
    for _ in range(5):
        start = time.perf_counter()
        con.execute(GROUP_BY).fetchall()
        warm.append((time.perf_counter() - start) * 1e3)
    warm_ms = statistics.median(warm)
    start = time.perf_counter()
    acc: dict[str, list[float]] = defaultdict(lambda: [0, float("inf"), float("-inf")])
    for trial_id, loss, auc in con.execute("SELECT trial_id, loss, auc FROM metrics").fetchall():
        a = acc[trial_id]
        a[0] += 1
        a[1] = min(a[1], loss)
        if auc is not None:
            a[2] = max(a[2], auc)
    python_ms = (time.perf_counter() - start) * 1e3
    con.close()
    assert len(acc) == groups
    print(
        f"analyst group-by over {n} rows into {groups} groups: warm {warm_ms:.1f} ms "
        f"(median of 5), cold {cold_ms:.0f} ms incl. connect; naive fetch + group in Python: "
        f"{python_ms:.0f} ms"
    )
    return {
        "metric_rows": n,
        "db_mb": round(size_mb, 1),
        "publish_s": round(publish_s, 3),
        "naive_logical_copy_s": round(logical_s, 3),
        "groupby_warm_ms": round(warm_ms, 1),
        "groupby_cold_ms": round(cold_ms, 1),
        "naive_python_groupby_ms": round(python_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--naive-trials", type=int, default=200)
    parser.add_argument("--metric-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"duckdb {duckdb.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="rea-insights-bench-"))
    try:
        ingest = bench_ingest(tmp, args.trials, args.naive_trials)
        query = bench_publish_and_query(tmp, args.metric_rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures = {
        "bench": "insights",
        "duckdb": duckdb.__version__,
        "cpus": os.cpu_count(),
        # other work on the machine slows every figure down: read them with the load
        "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "ingest": ingest,
        "publish_and_query": query,
        "targets": {
            "ingest_10k_s": 1.0,
            "groupby_1m_warm_ms": 50.0,
        },
        "met": {
            "results_db_write": ingest["results_db_write_s"] <= 1.0,
            "results_end_to_end": ingest["results_ingest_end_to_end_s"] <= 1.0,
            "groupby_warm": query["groupby_warm_ms"] <= 50.0,
        },
    }
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
