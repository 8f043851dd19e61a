"""Optuna TPE and random search over the baseline's space, on the training pool.

Each search is sequential (ask, train, tell: the sampler sees every result before it proposes
the next config, Optuna's default use); the pool runs several searches at once. Trial 0 of every
search is the baseline config on the search seed (the same run that measures the TE unit), the
sampler is seeded with the search seed and every trial trains on that seed. A search stops once
its cumulative compute reaches the largest budget.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from benchmarks.searchbench import accounting
from benchmarks.searchbench.accounting import RunResult, TrialRecord
from benchmarks.searchbench.space import baseline_params, search_space, to_config
from benchmarks.searchbench.worker import TrainingPool

METHODS = ("tpe", "random")
# A guard against a search whose trials all fail at once and so never spend its budget.
MAX_TRIALS = 1000


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

    def tell(self, result: RunResult, unit_s: float) -> TrialRecord:
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
        self.trials = accounting.with_compute([*self.trials, record], unit_s)
        return self.trials[-1]

    def finished(self, max_budget_te: float) -> bool:
        return accounting.done(self.trials, max_budget_te) or len(self.trials) >= MAX_TRIALS


def run_searches(
    pool: TrainingPool,
    searches: Sequence[Search],
    unit_s: float,
    max_budget_te: float,
    on_finished: Callable[[Search], None] = lambda s: None,
) -> None:
    """Run every search to the largest budget, several at once on the pool."""
    live: dict[cf.Future[RunResult], list[Search]] = {}

    def advance(search: Search) -> None:
        if search.finished(max_budget_te):
            on_finished(search)
            return
        live.setdefault(pool.submit(search.ask(), search.seed), []).append(search)

    for search in searches:
        advance(search)
    while live:
        ready, _ = cf.wait(list(live), return_when=cf.FIRST_COMPLETED)
        for future in ready:
            for search in live.pop(future):
                search.tell(future.result(), unit_s)
                advance(search)
