"""A real plan for tests that need one without a workspace: the planner's own pipeline (data
profile, knowledge base, ranking, budget fit) on small synthetic data."""

from __future__ import annotations

from rea_cli.config import Settings
from rea_cli.planner import cost
from rea_cli.planner.knowledge import candidates, load_knowledge, strategy_entries
from rea_cli.planner.plan import Plan, baseline_config, build_plan, data_spec
from rea_cli.planner.ranking import HistoryRow
from rea_cli.planner.rules import profile_facts
from rea_cli.runbooks import load_runbooks


def real_plan(
    campaign_id: str = "c",
    *,
    family: str = "dcn_v2",
    dataset: str = "synthetic",
    profile: str = "tiny",
    metric: str = "auc",
    budget_gpu_hours: float = 4.0,
    settings: Settings | None = None,
    history: list[HistoryRow] | None = None,
    seed: int = 0,
) -> Plan:
    from ranking_models.data.fingerprint import fingerprint
    from ranking_models.data.profile import profile_data

    data = data_spec(dataset, profile)
    data_profile = profile_data(data).model_dump(mode="json")
    baseline = baseline_config(family, profile, metric)
    strategies = [s for s in load_knowledge(None).strategies if family in s.families]
    found, dropped = candidates(strategies, baseline, profile_facts(baseline, data_profile, None))
    return build_plan(
        campaign_id=campaign_id,
        created_at="2026-11-29T00:00:00+00:00",
        goal="",
        family=family,
        dataset=dataset,
        data=data,
        data_profile=data_profile,
        fingerprint=fingerprint(data),
        budget_gpu_hours=budget_gpu_hours,
        settings=settings or Settings(),
        profile_name=profile,
        metric=metric,
        baseline=baseline,
        candidates=found,
        dropped=dropped,
        knowledge=strategy_entries(strategies),
        history=history or [],
        cost=cost.prior(family),
        runbooks=load_runbooks(),
        seed=seed,
    )
