"""Ranking hypotheses: the knowledge base's prior, shrunk toward what history measured.

Every strategy's effect is modelled as a relative gain (a fraction of the baseline's metric,
positive = better). Its prior comes from the knowledge base (mean and sd; boosted by the
baseline's profile). History (the insights DB's `strategy_effects`: paired gains of earlier
campaigns) updates it, empirical-Bayes style: the posterior mean is a precision-weighted blend,
so a strategy measured often on similar data is ranked by what it did, and one measured once is
still mostly its prior. The score adds an exploration bonus proportional to the posterior sd
(untried strategies keep their prior's width), and divides by the square root of the cost, so
cheap promising changes are screened first. Pure functions; the plan shows every number.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

# sd of one paired relative gain when history has no spread to tell (a single pair)
DEFAULT_NOISE_REL = 0.002
EXPLORATION = 0.5  # bonus = EXPLORATION x posterior sd
MIN_PRIOR_SD = 1e-4


@dataclass(frozen=True)
class HistoryRow:
    """One row of `strategy_effects`: a strategy's paired relative gains in earlier campaigns."""

    strategy: str
    model_family: str
    traits: str
    n: int
    mean_rel_gain: float
    sd_rel_gain: float | None
    n_campaigns: int = 1


class RankNumbers(BaseModel):
    """The numbers behind one hypothesis's rank (shown in the plan)."""

    prior_mean: float
    prior_sd: float
    history_n: int
    history_mean: float | None
    history_scope: str  # "same data traits", "same model family", "any family", "none"
    posterior_mean: float
    posterior_sd: float
    bonus: float
    cost: float
    score: float


def history_for(
    strategy: str, family: str, traits: str, rows: Sequence[HistoryRow]
) -> tuple[list[HistoryRow], str]:
    """The most specific history of a strategy: same family and traits, else same family,
    else any family."""
    mine = [r for r in rows if r.strategy == strategy]
    for scope, keep in (
        ("same data traits", lambda r: r.model_family == family and r.traits == traits),
        ("same model family", lambda r: r.model_family == family),
        ("any family", lambda r: True),
    ):
        found = [r for r in mine if keep(r)]
        if found:
            return found, scope
    return [], "none"


def pooled(rows: Iterable[HistoryRow]) -> tuple[int, float, float]:
    """(n, mean, noise sd of one pair) pooled over rows."""
    rows = list(rows)
    n = sum(r.n for r in rows)
    mean = sum(r.n * r.mean_rel_gain for r in rows) / n
    spreads = [r.sd_rel_gain for r in rows if r.sd_rel_gain is not None and r.n >= 2]
    noise = statistics.fmean(spreads) if spreads else DEFAULT_NOISE_REL
    return n, mean, max(noise, MIN_PRIOR_SD)


def empirical_prior_sd(rows: Sequence[HistoryRow]) -> float | None:
    """The spread of true strategy effects that history shows (between-strategy variance
    minus sampling variance), when at least five strategies were measured; else None."""
    by_strategy: dict[str, list[HistoryRow]] = {}
    for r in rows:
        by_strategy.setdefault(r.strategy, []).append(r)
    if len(by_strategy) < 5:
        return None
    stats = [pooled(rs) for rs in by_strategy.values()]
    means = [m for _, m, _ in stats]
    sampling = statistics.fmean(noise**2 / n for n, _, noise in stats)
    between = statistics.pvariance(means) - sampling
    return math.sqrt(between) if between > 0 else MIN_PRIOR_SD


def rank_numbers(
    *,
    prior_mean: float,
    prior_sd: float,
    cost: float,
    strategy: str | None,
    family: str,
    traits: str,
    history: Sequence[HistoryRow],
    prior_sd_override: float | None = None,
) -> RankNumbers:
    """Posterior of one hypothesis's relative gain and its screening score."""
    tau = max(prior_sd_override or prior_sd, MIN_PRIOR_SD)
    rows, scope = history_for(strategy, family, traits, history) if strategy else ([], "none")
    post_mean, post_sd, hist_n, hist_mean = prior_mean, tau, 0, None
    if rows:
        hist_n, hist_mean, noise = pooled(rows)
        precision = 1 / tau**2 + hist_n / noise**2
        post_mean = (prior_mean / tau**2 + hist_n * hist_mean / noise**2) / precision
        post_sd = math.sqrt(1 / precision)
    bonus = EXPLORATION * post_sd
    score = (post_mean + bonus) / math.sqrt(max(cost, 0.05))
    return RankNumbers(
        prior_mean=prior_mean,
        prior_sd=tau,
        history_n=hist_n,
        history_mean=hist_mean,
        history_scope=scope,
        posterior_mean=post_mean,
        posterior_sd=post_sd,
        bonus=bonus,
        cost=cost,
        score=score,
    )
