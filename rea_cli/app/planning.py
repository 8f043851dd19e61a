"""`rea plan`: read the baseline (its data, its profile, the workspace's history), ask the
knowledge base what applies, rank it, fit the engine to the budget, write the plan."""

from __future__ import annotations

import json
import logging
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from ranking_models.errors import RankingModelsError
from rea_cli.app.sync import sync_insights
from rea_cli.campaign.journal import now_iso
from rea_cli.campaign.model import Budget, Campaign
from rea_cli.campaign.state import CampaignState
from rea_cli.campaign.store import CampaignStore, list_campaigns
from rea_cli.errors import ReaError, UsageError
from rea_cli.fsutil import read_json, write_json_atomic
from rea_cli.identity import current_user
from rea_cli.planner import cost as cost_model
from rea_cli.planner.plan import Plan, baseline_config, build_plan, data_spec, plan_hash
from rea_cli.planner.plan import parse_budget as parse_budget  # for the CLI's --budget
from rea_cli.planner.ranking import HistoryRow
from rea_cli.runbooks import load_runbooks
from rea_cli.text import check_user_text
from rea_cli.workspace import Workspace

log = logging.getLogger(__name__)
ACCEPTED_CONFIG = "accepted-config.json"


def new_campaign_id() -> str:
    return f"c{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"


def plan_campaign(
    ws: Workspace,
    *,
    model: str,
    dataset: str,
    budget_gpu_hours: float,
    goal: str = "",
    metric: str | None = None,
    profile: str = "standard",
    campaign_id: str | None = None,
    seed: int = 0,
) -> tuple[Campaign, Plan]:
    """Propose hypotheses and a three-phase plan; the campaign starts PLANNED."""
    check_user_text("--goal", goal)
    from rea_cli.planner.knowledge import candidates, load_knowledge, strategy_entries
    from rea_cli.planner.rules import profile_facts

    cid = new_campaign_id() if campaign_id is None else campaign_id
    store = CampaignStore(ws, cid)
    if store.dir.exists():
        raise UsageError(f"campaign {cid} already exists; choose another --id")
    metric = metric or ws.settings.planner.metric
    data = data_spec(dataset, profile)
    data_profile, fingerprint = _read_data(data, dataset)
    baseline, origin = _baseline(ws, model, dataset, profile, metric)
    knowledge = load_knowledge(ws.root)
    family_strategies = [s for s in knowledge.strategies if model in s.families]
    family_strategies += _earlier_proposals(ws, model, dataset, metric, fingerprint)
    found, dropped = candidates(
        family_strategies, baseline, profile_facts(baseline, data_profile, None)
    )
    created = now_iso()
    plan = build_plan(
        campaign_id=cid,
        created_at=created,
        goal=goal + (f" (from the accepted config of {origin})" if origin else ""),
        family=model,
        dataset=dataset,
        data=data,
        data_profile=data_profile,
        fingerprint=fingerprint,
        budget_gpu_hours=budget_gpu_hours,
        settings=ws.settings,
        profile_name=profile,
        metric=metric,
        baseline=baseline,
        candidates=found,
        dropped=[*knowledge.dropped, *dropped],
        knowledge=strategy_entries(family_strategies),
        history=_history(ws, metric, baseline),
        cost=_cost(ws, model, data),
        runbooks=load_runbooks(ws.root / "runbooks"),  # a bad runbook is refused here
        seed=seed,
    )
    campaign = Campaign(
        campaign_id=cid,
        created_at=created,
        created_by=current_user().name,
        goal=plan.goal,
        model_family=model,
        dataset=dataset,
        metric=plan.metric,
        direction=plan.direction,
        backend=plan.backend,
        plan_hash="",
        budget=Budget(approved_gpu_hours=budget_gpu_hours),
        hypotheses=dict(plan.hypotheses),
        traits=plan.traits,
    )
    store.dir.mkdir(parents=True)
    try:
        write_json_atomic(store.plan_path, plan.dump())
        campaign.plan_hash = plan_hash(store.plan_path.read_bytes())
        store.event("planned", plan_hash=campaign.plan_hash, by=campaign.created_by)
        store.save(campaign)  # campaign.json last: until it exists there is no campaign
    except BaseException:
        shutil.rmtree(store.dir, ignore_errors=True)
        raise
    sync_insights(ws, store, publish=True)
    return campaign, plan


def _read_data(data: dict[str, Any], dataset: str) -> tuple[dict[str, Any], Any]:
    """The data's profile and fingerprint; its problems are the user's to fix, before any
    approval (a missing column, a label that is not 0/1, too few rows...)."""
    from ranking_models.data.fingerprint import fingerprint
    from ranking_models.data.profile import profile_data

    try:
        return profile_data(data).model_dump(mode="json"), fingerprint(data)
    except RankingModelsError as exc:
        raise UsageError(f"dataset {dataset!r}: {exc}") from None


def _baseline(
    ws: Workspace, family: str, dataset: str, profile: str, metric: str
) -> tuple[dict[str, Any], str | None]:
    """The family's default config; or, when a campaign on this model and data set was
    accepted, its accepted config (each campaign starts where the last accepted one ended)."""
    from ranking_models.config import ConfigError, apply_delta, validate_config

    config = baseline_config(family, profile, metric)
    for cid in reversed(_accepted(ws, family, dataset)):
        accepted = read_json(ws.campaign_dir(cid) / ACCEPTED_CONFIG)
        if not isinstance(accepted, dict) or not isinstance(accepted.get("config"), dict):
            continue
        try:
            validate_config(accepted["config"])
            return apply_delta(accepted["config"], {"train.monitor": metric}), cid
        except ConfigError as exc:
            log.warning("accepted config of %s not used as the baseline: %s", cid, exc)
    return config, None


def _readable_campaigns(ws: Workspace) -> Iterator[tuple[str, Campaign]]:
    """The workspace's campaigns that load (a damaged one is `rea status`'s to report)."""
    for cid in list_campaigns(ws):
        try:
            yield cid, CampaignStore(ws, cid).load()
        except ReaError:
            continue


def _accepted(ws: Workspace, family: str, dataset: str) -> list[str]:
    out = []
    for cid, c in _readable_campaigns(ws):
        if (
            c.state is CampaignState.ACCEPTED
            and c.model_family == family
            and c.dataset == dataset
            and c.proposal is not None
            and not c.proposal.keeps_baseline
        ):
            out.append((c.review.at if c.review else c.created_at, cid))
    return [cid for _, cid in sorted(out)]


def _earlier_proposals(
    ws: Workspace, family: str, dataset: str, metric: str, fingerprint: Any
) -> list[Any]:
    """The confirmed proposals of this workspace's earlier campaigns on the same model, data
    and metric that await review, as hypotheses of their own: a new campaign checks them
    first (their prior is the gain they confirmed) instead of searching for them again. An
    accepted proposal is the new baseline already; a rejected one is not tried again."""
    from rea_cli.planner.knowledge import proposal_strategy

    out = []
    for cid, c in _readable_campaigns(ws):
        p = c.proposal
        if (
            c.state is not CampaignState.AWAITING_REVIEW
            or c.model_family != family
            or c.dataset != dataset
            or c.metric != metric
            or p is None
            or p.keeps_baseline
            or not p.significant
            or not p.delta
            or not p.gain
            or not p.baseline_mean
        ):
            continue
        plan = read_json(ws.campaign_dir(cid) / "plan.json")
        if fingerprint is not None and not _same_data(plan, fingerprint):
            continue
        rel = p.gain / abs(p.baseline_mean)
        half = (p.ci_high - p.ci_low) / 2 if p.ci_low is not None and p.ci_high else 0.0
        test = f", test {p.test_gain:+.4g}" if p.test_gain is not None else ""
        try:
            out.append(
                proposal_strategy(
                    {
                        "id": _proposal_id(cid),
                        "name": f"the proposal of campaign {cid}",
                        "rationale": (
                            f"Campaign {cid} confirmed this change over {p.n} paired seeds "
                            "and awaits review: checked again here before anything new."
                        ),
                        "reference": f"campaign {cid}",
                        "family": family,
                        "observation": (
                            f"campaign {cid} confirmed {metric} {p.gain:+.4g}{test} "
                            f"({p.hypothesis_id})"
                        ),
                        "prior": {
                            "mean": max(-0.5, min(0.5, rel)),
                            "sd": max(1e-4, min(0.5, half / abs(p.baseline_mean) or 1e-4)),
                        },
                        "cost": _epochs_ratio(plan, p.delta),
                        "delta": p.delta,
                    },
                    f"campaign {cid}",
                )
            )
        except ValueError as exc:  # a proposal no entry can hold: history is advisory
            log.warning("proposal of %s not tried again: %s", cid, exc)
    return out


def _proposal_id(cid: str) -> str:
    import hashlib
    import re

    text = re.sub(r"[^a-z0-9_.-]", "-", cid.lower())
    if len(text) > 30:
        text = text[:21] + "-" + hashlib.sha256(cid.encode()).hexdigest()[:8]
    return f"proposal.{text}"


def _same_data(plan: Any, fingerprint: Any) -> bool:
    """The earlier campaign trained on the same data (its plan's fingerprint, when known)."""
    theirs = plan.get("data_fingerprint") if isinstance(plan, dict) else None
    if not theirs:
        return True
    mine = getattr(fingerprint, "model_dump", lambda **_: fingerprint)(mode="json")
    return bool(theirs == mine)


def _epochs_ratio(plan: Any, delta: dict[str, Any]) -> float:
    """The proposal's training length over its baseline's (its cost as a hypothesis)."""
    try:
        base = float(plan["baseline"]["train"]["epochs"])
        return max(0.1, float(delta.get("train.epochs", base)) / base)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 1.0


def _history(ws: Workspace, metric: str, baseline: dict[str, Any]) -> list[HistoryRow]:
    """Strategy effects measured in this workspace (the analyst copy when published)."""
    if not ws.analyst_db_path.exists() and not ws.db_path.exists():
        return []
    from rea_cli.insights import readable_db, strategy_effects
    from rea_cli.planner.plan import METRIC_DIRECTION

    try:
        rows = strategy_effects(
            readable_db(ws.db_path, ws.analyst_db_path),
            metric=metric,
            direction=METRIC_DIRECTION[metric],
        )
    except Exception as exc:  # history is advisory: never block planning on it
        log.warning("insights history unavailable (%s); planning from the knowledge base", exc)
        return []
    return [
        HistoryRow(
            strategy=r["strategy"],
            model_family=r["model_family"],
            traits=r["traits"] or "",
            n=int(r["n"]),
            mean_rel_gain=float(r["mean_rel_gain"]),
            sd_rel_gain=None if r["sd_rel_gain"] is None else float(r["sd_rel_gain"]),
            n_campaigns=int(r["n_campaigns"]),
        )
        for r in rows
        if r.get("mean_rel_gain") is not None and r.get("strategy")
    ]


def _cost(ws: Workspace, family: str, data: dict[str, Any]) -> cost_model.CostModel:
    """Seconds per sample measured on this family and data in the workspace, else a prior."""
    if not ws.analyst_db_path.exists() and not ws.db_path.exists():
        return cost_model.prior(family)
    from rea_cli.insights import cost_measurements, readable_db

    try:
        rows = cost_measurements(
            readable_db(ws.db_path, ws.analyst_db_path),
            model_family=family,
            data=json.dumps(data, sort_keys=True, separators=(",", ":")),
        )
    except Exception as exc:
        log.warning("cost history unavailable (%s); using the prior", exc)
        return cost_model.prior(family)
    return cost_model.learned(family, rows, "history")
