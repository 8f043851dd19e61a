"""Optuna TPE and random search over the baseline's space, on the training pool.

Each search is sequential (ask, train, tell: the sampler sees every result before it proposes
the next config, Optuna's default use); the pool runs several searches at once. Trial 0 of every
search is the baseline config on the search seed (the same run that measures the TE unit), the
sampler is seeded with the search seed and every trial trains on that seed. A search stops once
its cumulative compute reaches STOP_MARGIN x the largest budget.

With Optuna's defaults TPE starts with 10 random trials drawn like RandomSampler with the same
seed: TPE and random search on one search seed coincide for their first 10 trials (observed),
so at small budgets the two are one measurement, not two.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from benchmarks.searchbench import accounting
from benchmarks.searchbench.accounting import Clock, RunResult, TrialRecord
from benchmarks.searchbench.space import baseline_params, search_space, to_config
from benchmarks.searchbench.worker import TrainingPool

METHODS = ("tpe", "random")
# A guard against a search whose trials all fail at once and so never spend its budget.
MAX_TRIALS = 1000
# Searches run a little past the largest budget: a trial's TE is final only once the clock
# readings after it are in, and the prefix at the largest budget must still be complete.
STOP_MARGIN = 1.1
# Clock runs: the baseline on seeds of their own, about once a minute during the searches.
CLOCK_EVERY_S = 60.0
CLOCK_SEED_BASE = 2000


def make_sampler(method: str, seed: int) -> optuna.samplers.BaseSampler:
    """Optuna's samplers with their default settings (nothing tuned for this benchmark)."""
    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown search method {method!r}; choose from {', '.join(METHODS)}")


class Search:
    """One method on one search seed: its study and its trials in order of completion."""

    def __init__(self, method: str, seed: int, baseline: dict[str, Any]) -> None:
        optuna.logging.set_verbosity(logging.WARNING)
        self.method, self.seed, self.baseline = method, seed, baseline
        self.space = search_space(baseline)
        start = baseline_params(baseline)
        if to_config(baseline, start) != baseline:
            raise ValueError("the baseline config is not a point of the search space")
        self.study = optuna.create_study(direction="minimize", sampler=make_sampler(method, seed))
        self.study.enqueue_trial(start)
        self.trials: list[TrialRecord] = []
        self._asked: tuple[optuna.trial.Trial, dict[str, Any]] | None = None

    def ask(self) -> dict[str, Any]:
        """The next config to train (the previous one must have been told)."""
        if self._asked is not None:
            raise RuntimeError("ask() twice without tell()")
        trial = self.study.ask(self.space)
        config = to_config(self.baseline, trial.params)
        self._asked = (trial, config)
        return config

    def tell(self, result: RunResult, unit: float | Clock) -> TrialRecord:
        if self._asked is None:
            raise RuntimeError("tell() without ask()")
        trial, config = self._asked
        self._asked = None
        score = result.metric("valid")
        if score is None:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, score)
        record = TrialRecord(
            method=self.method,
            search_seed=self.seed,
            index=len(self.trials),
            seed=self.seed,
            config=config,
            params=dict(trial.params),
            result=result,
        )
        self.trials = accounting.with_compute([*self.trials, record], unit)
        return self.trials[-1]

    def finished(self, max_budget_te: float) -> bool:
        return accounting.done(self.trials, max_budget_te) or len(self.trials) >= MAX_TRIALS


def run_searches(
    pool: TrainingPool,
    searches: Sequence[Search],
    clock: Clock,
    max_budget_te: float,
    on_finished: Callable[[Search], None] = lambda s: None,
    clock_every_s: float = CLOCK_EVERY_S,
) -> None:
    """Run every search to STOP_MARGIN x the largest budget, several at once on the pool, and
    a baseline clock run (seed CLOCK_SEED_BASE + k) about every clock_every_s.

    At most one run per worker is handed to the pool, so a clock run that is due takes the
    next free worker instead of queueing behind trials; nothing else may use the pool
    meanwhile.
    """
    waiting: deque[Search] = deque(searches)
    live: dict[cf.Future[RunResult], list[Search]] = {}
    ticks: set[cf.Future[RunResult]] = set()
    baseline = searches[0].baseline if searches else {}
    last_tick, n_ticks = time.monotonic(), 0
    while True:
        while len(live) + len(ticks) < pool.workers and (waiting or live):
            if time.monotonic() - last_tick > clock_every_s:
                ticks.add(pool.submit(baseline, CLOCK_SEED_BASE + n_ticks))
                last_tick, n_ticks = time.monotonic(), n_ticks + 1
                continue
            if not waiting:
                break
            search = waiting.popleft()
            if search.finished(max_budget_te * STOP_MARGIN):
                on_finished(search)
                continue
            live.setdefault(pool.submit(search.ask(), search.seed), []).append(search)
        if not live and not ticks:
            return
        # wake up for the next clock run even while long trials hold every worker
        ready, _ = cf.wait([*live, *ticks], timeout=clock_every_s, return_when=cf.FIRST_COMPLETED)
        for future in ready:
            if future in ticks:
                ticks.discard(future)
                clock.add(future.result())
                continue
            for search in live.pop(future):
                search.tell(future.result(), clock)
                waiting.append(search)
