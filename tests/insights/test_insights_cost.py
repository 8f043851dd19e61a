"""cost_measurements, the cost history `rea plan` learns seconds per sample from: the
baselines' attempts when there are any (the cost model prices every trial as a multiple of a
full baseline trial, and other configs cost more per sample), else every succeeded attempt."""

from __future__ import annotations

import json

import pytest
from insights_builder import CampaignBuilder

from rea_cli.app.planning import _cost
from rea_cli.insights import cost_measurements, sync_campaign
from rea_cli.planner.plan import BASELINE, data_spec
from rea_cli.workspace import Workspace

FAMILY = "dcn_v2"
DATASET = "movielens-100k"
PROFILE = "tiny"  # the builder's plan (tests.plans.real_plan) is built for this profile


def data_key() -> str:
    """The data spec as `rea plan` passes it (planning._cost): canonical JSON."""
    return json.dumps(data_spec(DATASET, PROFILE), sort_keys=True, separators=(",", ":"))


def campaign(
    ws: Workspace, trials: dict[str, tuple[str, str | None, float, int]]
) -> CampaignBuilder:
    """trial id -> (hypothesis, attempt status, device_time_s, samples_seen), synced."""
    b = CampaignBuilder(ws, model_family=FAMILY, dataset=DATASET)
    for hid, *_ in trials.values():
        if hid != BASELINE:
            b.hypothesis(hid, delta={"model.embedding_dim": 64})
    b.phase("validation", status="done")
    b.write_plan()
    for seed, (tid, (hid, status, seconds, samples)) in enumerate(trials.items()):
        b.trial(tid, hid, seed)
        b.attempt(tid, status=status, device_time_s=seconds, samples_seen=samples)
    b.judge("validation")
    b.write_campaign()
    sync_campaign(ws.db_path, b.dir)
    return b


def test_the_data_key_is_the_trials_data(ws: Workspace) -> None:
    # otherwise the tests below would pass on an empty history
    b = campaign(ws, {"validation-baseline-s0": (BASELINE, "succeeded", 2.0, 10_000)})
    assert b.plan.data == data_spec(DATASET, PROFILE)
    assert cost_measurements(ws.db_path, model_family=FAMILY, data=data_key()) == [(2.0, 10_000)]


def test_baseline_attempts_set_the_rate_when_there_are_any(ws: Workspace) -> None:
    campaign(
        ws,
        {
            "validation-baseline-s0": (BASELINE, "succeeded", 2.0, 10_000),
            "validation-emb64-s1": ("emb64", "succeeded", 10.0, 10_000),
        },
    )
    rows = cost_measurements(ws.db_path, model_family=FAMILY, data=data_key())
    assert rows == [(2.0, 10_000)]
    # through `rea plan`'s own path: a baseline trial priced at the baseline's rate
    cost = _cost(ws, FAMILY, data_spec(DATASET, PROFILE))
    assert cost.source == "history" and cost.n == 1
    assert cost.seconds_per_sample == pytest.approx(2.0 / 10_000)


def test_without_baseline_attempts_every_succeeded_attempt_counts(ws: Workspace) -> None:
    # the baseline's only attempt failed: nothing of the baseline to learn from
    campaign(
        ws,
        {
            "validation-baseline-s0": (BASELINE, "failed", 2.0, 10_000),
            "validation-emb64-s1": ("emb64", "succeeded", 10.0, 10_000),
            "validation-emb64-s2": ("emb64", "succeeded", 6.0, 20_000),
        },
    )
    rows = cost_measurements(ws.db_path, model_family=FAMILY, data=data_key())
    assert sorted(rows) == [(6.0, 20_000), (10.0, 10_000)]
    cost = _cost(ws, FAMILY, data_spec(DATASET, PROFILE))
    assert cost.source == "history" and cost.n == 2
    assert cost.seconds_per_sample == pytest.approx((10.0 / 10_000 + 6.0 / 20_000) / 2)
