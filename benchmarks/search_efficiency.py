"""Search efficiency: a full rea campaign vs Optuna TPE and random search at equal compute.

    python benchmarks/search_efficiency.py --dataset movielens-100k [--budget 10,30] [--seeds 3]
        [--retrain-seeds 5] [--model dcn_v2] [--workers 2] [--methods tpe,random,rea] [--out DIR]

Same trainer, same processed split, same model family for every method. Compute is counted in
trial-equivalents (TE): the trainer's own device seconds / those of one full-fidelity baseline
trial measured in this run, read from the baseline runs nearest in time (a shared machine's
speed drifts; benchmarks/searchbench/accounting.py). TPE and random search run over the
baseline's hyperparameter space (benchmarks/searchbench/space.py) until their cumulative
compute passes the largest budget; a method's result at budget N is its best-by-valid config
among the trials within N TE. rea runs a real campaign per search seed and budget on the local
backend (benchmarks/searchbench/rea_side.py) with `rea plan --seed` = the search seed; a second
campaign with half the largest budget and another seed in the same workspace gives the
warm-start figure. Every selected config and the baseline are retrained on fresh seeds
(900000 + i: no method ever trains on them), paired by seed; gains are on the test split (and
valid), with 95% Student-t intervals (benchmarks/searchbench/stats.py: how diverged seeds count).

Prints readable lines, then as its LAST line one JSON object (benchmarks/searchbench/report.py
BenchLine); the per-trial log goes to --out/search_efficiency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: this checkout's packages first
    sys.path.insert(0, str(ROOT))

from benchmarks.searchbench import accounting, report  # noqa: E402
from benchmarks.searchbench.accounting import Clock, RunResult, TrialRecord  # noqa: E402
from benchmarks.searchbench.datasets import data_spec, slug  # noqa: E402
from benchmarks.searchbench.errors import BenchError  # noqa: E402
from benchmarks.searchbench.report import BenchLine, Selection, budget_key  # noqa: E402

METHODS = ("tpe", "random", "rea")
# Retrain seeds no method trains on (rea's campaign seed S trains on 10000*S + offsets below
# 10000, the searches on their search seed): a selection is never reported on the runs that
# selected it. The warm-start campaigns plan with --seed WARM_SEED_BASE + search seed.
MAX_SEEDS = 20
WARM_SEED_BASE = MAX_SEEDS
RETRAIN_SEED_BASE = 900_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--dataset",
        default="movielens-100k",
        help="what `rea plan --dataset` takes, or synthetic-planted / movielens-1m",
    )
    p.add_argument("--budget", default="10,30", help="budgets in trial-equivalents, e.g. 10,30")
    p.add_argument("--seeds", type=int, default=3, help="search seeds (0..N-1)")
    p.add_argument("--retrain-seeds", type=int, default=5, help="fresh seeds for retraining")
    p.add_argument("--model", default="dcn_v2")
    p.add_argument(
        "--profile",
        "--rea-profile",
        dest="rea_profile",
        default="standard",
        help="rea's profile (tiny, demo, standard): the data (synthetic rows) and the baseline's "
        "training, the same for every method",
    )
    p.add_argument("--workers", type=int, default=2, help="training processes at once")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--out", type=Path, default=None, help="folder for the log and rea workspaces")
    rea = p.add_argument_group("rea campaign (defaults: a standard campaign, as a user runs it)")
    rea.add_argument(
        "--rea-settings",
        type=Path,
        default=None,
        help="TOML appended to each workspace's rea.toml (its sections replace the defaults')",
    )
    rea.add_argument(
        "--rea-budget-gpu-h",
        type=float,
        default=None,
        help="a fixed GPU-hour budget instead of budget x one baseline trial's "
        "allocation (to try the plumbing with an engine that plans coarsely)",
    )
    rea.add_argument(
        "--no-warm-start",
        action="store_true",
        help="skip the second campaign of the warm-start figure",
    )
    return p.parse_args(argv)


def parse_budgets(text: str) -> list[float]:
    try:
        budgets = sorted({float(b) for b in text.split(",") if b.strip()})
    except ValueError:
        raise BenchError(f"--budget {text!r}: give trial-equivalents like 10,30") from None
    if not budgets or budgets[0] <= 0:
        raise BenchError(f"--budget {text!r}: give positive trial-equivalents like 10,30")
    return budgets


def parse_methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise BenchError(f"--methods {text!r}: choose from {', '.join(METHODS)}")
    return methods


def say(text: str) -> None:
    print(text, flush=True)


class Bench:
    """One benchmark run: the pool, the searches, the rea campaigns, the retrains."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.monotonic()
        self.budgets = parse_budgets(args.budget)
        self.methods = parse_methods(args.methods)
        if not 1 <= args.seeds <= MAX_SEEDS or args.retrain_seeds < 2 or args.workers < 1:
            raise BenchError(
                f"need 1 <= --seeds <= {MAX_SEEDS}, --retrain-seeds >= 2 and --workers >= 1"
            )
        if args.rea_settings is not None and not args.rea_settings.is_file():
            raise BenchError(f"--rea-settings {args.rea_settings}: no such file")
        self.seeds = list(range(args.seeds))
        self.retrain_seeds = [RETRAIN_SEED_BASE + i for i in range(args.retrain_seeds)]
        self.spec = data_spec(args.dataset, args.rea_profile)
        self.baseline = baseline(args.model, args.rea_profile)
        self.out: Path = args.out or ROOT / "out" / "search-efficiency" / slug(args.dataset)
        self.out.mkdir(parents=True, exist_ok=True)
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.clock = Clock()
        self.searches: list[Any] = []
        self.rea_runs: list[tuple[str, float, Any]] = []  # method, budget, ReaRun
        self.probes: list[tuple[float, RunResult]] = []  # wall seconds, result
        self.trials: list[TrialRecord] = []
        self.selections: list[Selection] = []
        self.outcomes: dict[tuple[str, str], list[report.SeedOutcome]] = {}
        self.pool: Any = None
        self.baseline_samples = 0

    # ------------------------------------------------------------------ steps

    def check_data(self) -> None:
        from ranking_models.data.processing import load_data

        try:
            data = load_data(self.spec)
        except ValueError as exc:
            raise BenchError(f"--dataset {self.args.dataset}: {exc}") from None
        say(
            f"data {self.args.dataset}: {len(data.train)} train / {len(data.valid)} valid / "
            f"{len(data.test)} test rows"
        )

    def measure_unit(self) -> None:
        """The baseline on every search seed: the first clock readings (and trial 0s)."""
        runs = {s: self.pool.result(self.baseline, s) for s in self.seeds}
        failed = [f"seed {s}: {r.failure}" for s, r in runs.items() if r.status != "succeeded"]
        if failed:
            raise BenchError(f"the baseline config failed ({'; '.join(failed)}): no TE unit")
        for r in runs.values():
            self.clock.add(r)
        self.baseline_samples = int(statistics.median(r.samples_seen for r in runs.values()))
        say(
            f"1 TE ~ {self.clock.median():.2f} device-s (baseline runs: "
            f"{', '.join(f'{r.device_time_s:.2f}' for r in runs.values())}); "
            f"{self.baseline_samples} samples; "
            f"valid NE {statistics.fmean(r.valid['ne'] for r in runs.values()):.4f}"
        )

    def run_searches(self) -> None:
        from benchmarks.searchbench.searches import Search, run_searches

        self.searches = [
            Search(m, s, self.baseline) for m in self.methods if m != "rea" for s in self.seeds
        ]
        if not self.searches:
            return

        def finished(search: Search) -> None:
            best = accounting.best_at(search.trials, max(self.budgets))
            say(
                f"{search.method} seed {search.seed}: {len(search.trials)} trials, "
                f"{search.trials[-1].cum_te:.1f} TE, best valid NE "
                f"{best.valid_score if best else float('nan'):.4f}"
                f" (trial {best.index if best else '-'})"
            )

        run_searches(self.pool, self.searches, self.clock, max(self.budgets), finished)

    def retrain(self, config: dict[str, Any] | None) -> None:
        """Queue a config (and the baseline) on every retrain seed; equal runs train once."""
        for cfg in (self.baseline, config):
            if cfg is not None:
                for seed in self.retrain_seeds:
                    self.pool.submit(cfg, seed)

    def drain(self) -> None:
        """Wait for every queued run: rea's trials must not share the CPUs with the pool's."""
        for future in list(self.pool.futures.values()):
            future.result()

    def run_rea(self) -> None:
        """rea campaigns one after another (the pool idle), a probe trial before each and one
        after the last."""
        from benchmarks.searchbench.rea_side import run_rea_campaign

        args = self.args
        # as many trials at once as the pool's workers: the same CPU sharing for every method
        settings = f"[local]\nmax_parallel = {args.workers}\n"
        if args.rea_settings is not None:
            extra = args.rea_settings.read_text()
            settings = extra if "[local]" in extra else settings + "\n" + extra
        top = max(self.budgets)
        plans: list[tuple[int, float, str, float]] = []  # seed, budget, method, workspace's
        for seed in self.seeds:
            plans += [(seed, budget, "rea", budget) for budget in self.budgets]
            if not args.no_warm_start:  # in the largest campaign's workspace, half its budget
                plans.append((seed, top / 2, "rea-warm", top))
        for seed, budget, method, ws_budget in plans:
            self.probe()
            run = run_rea_campaign(
                self.out / "rea" / f"s{seed}-te{ws_budget:g}",
                args.dataset,
                budget,
                self.clock.median(),
                seed,
                alloc_seconds=statistics.median(w for w, _ in self.probes),
                model=args.model,
                profile=args.rea_profile,
                settings=settings,
                budget_gpu_hours=args.rea_budget_gpu_h,
                campaign_id=f"bench-s{seed}-warm" if method == "rea-warm" else None,
                # the warm campaign replicates with other trial seeds: its gain must come from
                # the first campaign's history, not from reusing the first's identical trials
                plan_seed=WARM_SEED_BASE + seed if method == "rea-warm" else seed,
                expected_data=self.spec,
                env=self.rea_env(),
            )
            self.rea_runs.append((method, budget, run))
            self.note_rea_run(method, budget, run)
        self.probe()

    def probe(self) -> None:
        """Baseline trials as rea's local backend runs them (one array, forked from its runner,
        as many at once as rea runs trials): their elapsed time is what a trial's allocation is
        charged, their device time a clock reading in the conditions of rea's trials."""
        from benchmarks.searchbench.rea_side import measure_trials_local

        n, workers = len(self.probes), self.args.workers
        done = measure_trials_local(
            self.out / "probes" / str(n // workers),
            self.baseline,
            self.spec,
            self.seeds[0],
            workers,
            self.rea_env(),
        )
        self.probes += done
        say(
            f"probe {n // workers}: {workers} baseline trial(s) on the local backend: "
            + ", ".join(
                f"{w:.2f} s allocation / {r.device_time_s:.2f} device-s / start {r.startup_s} s"
                for w, r in done
            )
        )

    def rea_env(self) -> dict[str, str]:
        """This checkout's code and the pool's threads per trial, for rea and its trials."""
        from benchmarks.searchbench.worker import torch_threads

        path = os.environ.get("PYTHONPATH", "")
        return {
            "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
            "REA_TORCH_THREADS": str(torch_threads(self.args.workers)),
        }

    def note_rea_run(self, method: str, budget: float, run: Any) -> None:
        if run.error:
            self.errors.append(f"{method} seed {run.seed} budget {budget:g}: {run.error}")
        notes = list(run.warnings)
        if run.n_missing_results:
            notes.append(
                f"{method} seed {run.seed} budget {budget:g}: {run.n_missing_results} attempt(s) "
                "without a usable result.json (device time unknown, not counted)"
            )
        if not run.seeded and len(self.seeds) > 1:
            notes.append(
                "`rea plan` has no --seed: every search seed planned the same rea campaign "
                "(they differ only by timing and CPU nondeterminism)"
            )
        self.warnings += [w for w in notes if w not in self.warnings]
        say(
            f"{method} seed {run.seed} budget {budget:g} TE: {run.state}, {len(run.trials)} "
            f"trials, ~{run.te_used:.1f} TE used, {run.wall_s:.0f} s"
            + (f"; error: {run.error}" if run.error else "")
        )

    # ------------------------------------------------------------------ selections

    def final_clock(self) -> Clock:
        """Every full-fidelity baseline run of this benchmark, in the pool or as a process."""
        clock = Clock()
        for key, future in self.pool.futures.items():
            if json.loads(key)["config"] == self.baseline and future.done():
                clock.add(future.result())
        for _, r in self.probes:
            clock.add(r)
        return clock

    def select_all(self) -> None:
        """Every method's selection at every budget, with the final clock's compute."""
        for search in self.searches:
            trials = accounting.with_compute(search.trials, self.clock)
            self.trials += trials
            for budget in self.budgets:
                self.selections.append(
                    report.select(
                        search.method,
                        search.seed,
                        trials,
                        budget,
                        self.baseline,
                        self.baseline_samples,
                    )
                )
        for method, budget, run in self.rea_runs:
            trials = [
                t.model_copy(update={"method": method})
                for t in accounting.with_compute(run.trials, self.clock)
            ]
            self.trials += trials
            self.selections.append(
                Selection(
                    method=method,
                    search_seed=run.seed,
                    budget_te=budget,
                    config=same_monitor(run.selected_config),
                    usage=accounting.usage(trials, self.baseline_samples),
                    error=run.error,
                )
            )
        self.at_rea_compute()
        for sel in self.selections:
            self.retrain(sel.config)

    def at_rea_compute(self) -> None:
        """TPE's and random's selections at the compute each rea campaign actually used."""
        for sel in [s for s in self.selections if s.method == "rea" and not s.error]:
            if sel.usage is None or sel.usage.n_trials == 0:
                continue
            for method in ("tpe", "random"):
                trials = [
                    t
                    for t in self.trials
                    if t.method == method and t.search_seed == sel.search_seed
                ]
                if trials:
                    matched = report.select(
                        f"{method}@rea",
                        sel.search_seed,
                        trials,
                        sel.usage.te,
                        self.baseline,
                        self.baseline_samples,
                    )
                    # keyed by rea's budget, so it sits beside rea's own row
                    self.selections.append(matched.model_copy(update={"budget_te": sel.budget_te}))

    # ------------------------------------------------------------------ results

    def summarize(self) -> BenchLine:
        self.drain()

        def lookup(config: dict[str, Any], seed: int) -> RunResult:
            return self.pool.result(config, seed)

        groups: dict[tuple[str, str], list[Selection]] = {}
        for sel in self.selections:
            groups.setdefault((budget_key(sel.budget_te), sel.method), []).append(sel)
        results: dict[str, dict[str, report.MethodResult]] = {}
        matched: dict[str, dict[str, report.MethodResult]] = {}
        for (budget, method), sels in sorted(groups.items(), key=lambda kv: float(kv[0][0])):
            outs = [
                o
                for s in sels
                if (o := report.seed_outcome(s, self.baseline, self.retrain_seeds, lookup))
                is not None
            ]
            self.outcomes[(budget, method)] = outs
            result = report.method_result(sels, outs)
            if method.endswith("@rea"):
                matched.setdefault(budget, {})[method.split("@")[0]] = result
            elif method != "rea-warm":
                results.setdefault(budget, {})[method] = result
        base = {s: lookup(self.baseline, s) for s in self.retrain_seeds}
        readings = [d for _, d in self.clock.readings]
        line = BenchLine(
            dataset=self.args.dataset,
            data=self.spec,
            model=self.args.model,
            budgets_te=self.budgets,
            methods=self.methods,
            search_seeds=self.seeds,
            retrain_seeds=self.retrain_seeds,
            te_seconds=self.clock.median(),
            te_seconds_range=[min(readings), max(readings)],
            n_clock_readings=len(readings),
            baseline_samples=self.baseline_samples,
            alloc_seconds=statistics.median(w for w, _ in self.probes) if self.probes else None,
            baseline=report.BaselineFigures(
                valid_ne=_mean([r.metric("valid") for r in base.values()]),
                test_ne=_mean([r.metric("test") for r in base.values()]),
                n_failed=sum(r.status != "succeeded" for r in base.values()),
            ),
            results=results,
            at_rea_compute=matched,
            errors=self.errors,
            warnings=self.warnings,
            wall_time_s=0.0,
        )
        line.ratios = {b: report.ratios(r) for b, r in results.items() if "rea" in r}
        line.rea_small_vs_best_large = report.cross_budget(results, self.budgets)
        largest = budget_key(max(self.budgets))
        half = budget_key(max(self.budgets) / 2)
        if self.outcomes.get((half, "rea-warm")):
            line.warm_start = report.warm_start(
                self.outcomes.get((largest, "rea"), []),
                self.outcomes[(half, "rea-warm")],
                max(self.budgets),
            )
        line.targets = report.targets(line)
        line.wall_time_s = time.monotonic() - self.started
        return line

    def write_log(self, line: BenchLine) -> None:
        """The full log (every trial, selection, run and clock reading) beside the line."""
        path = self.out / "search_efficiency.json"
        line.log_file = str(path)
        runs = [
            {"key": json.loads(key), "result": fut.result().model_dump(mode="json")}
            for key, fut in self.pool.futures.items()
        ]
        doc = {
            "summary": line.model_dump(mode="json"),
            "clock": self.clock.readings,
            "trials": [t.model_dump(mode="json") for t in self.trials],
            "selections": [
                o.model_dump(mode="json") for outs in self.outcomes.values() for o in outs
            ],
            "rea_runs": [
                r.model_dump(mode="json", exclude={"trials"}) for _, _, r in self.rea_runs
            ],
            "probes": [{"wall_s": w, "result": r.model_dump(mode="json")} for w, r in self.probes],
            "runs": runs,
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(path)


def baseline(model: str, profile: str) -> dict[str, Any]:
    """The baseline config of `rea plan --model M --profile P --metric ne`: every method starts
    from the config rea's campaign starts from."""
    from rea_cli.errors import ReaError
    from rea_cli.planner.plan import baseline_config

    try:
        return baseline_config(model, profile, accounting.METRIC)
    except ReaError as exc:
        raise BenchError(f"--model / --rea-profile: {exc}") from None


def same_monitor(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """A config monitoring logloss, as monitoring NE: NE is logloss / a constant of the data,
    so both pick the same epoch; the baseline's retrains are then shared, not repeated."""
    if config is None or config.get("train", {}).get("monitor") != "logloss":
        return config
    return {**config, "train": {**config["train"], "monitor": accounting.METRIC}}


def _mean(values: list[float | None]) -> float | None:
    usable = [v for v in values if v is not None]
    return statistics.fmean(usable) if usable else None


def run(args: argparse.Namespace) -> BenchLine:
    from benchmarks.searchbench.worker import TrainingPool

    bench = Bench(args)
    bench.check_data()
    bench.pool = TrainingPool(bench.spec, args.workers)
    try:
        bench.measure_unit()
        bench.run_searches()
        bench.drain()
        if "rea" in bench.methods:
            bench.run_rea()
        bench.clock = bench.final_clock()
        bench.select_all()
        line = bench.summarize()
        bench.write_log(line)
    finally:
        bench.pool.close()
    for text in report.human_lines(line):
        say(text)
    return line


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        line = run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(line.model_dump(mode="json")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
