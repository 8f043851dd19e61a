"""What `rea status` and `rea watch` show: typed summaries of campaigns.

`live_summary` merges the saved campaign with the scheduler's current job states. Read-only:
watching never writes campaign state, so Ctrl-C cannot hurt a campaign.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from rea_cli.campaign.model import PHASES, Budget, Campaign, Proposal
from rea_cli.campaign.state import CampaignState, TrialStatus
from rea_cli.campaign.store import CampaignStore, list_campaigns
from rea_cli.errors import ReaError
from rea_cli.executor.backends import make_scheduler
from rea_cli.executor.scheduler import JobState
from rea_cli.workspace import Workspace


class PhaseCounts(BaseModel):
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    reasons: list[str] = Field(default_factory=list)  # "hypothesis/s0: diagnosis (message)"
    pending_reasons: dict[str, int] = Field(default_factory=dict)


class CampaignSummary(BaseModel):
    campaign_id: str
    state: str  # a CampaignState, or UNREADABLE
    phase: str | None = None
    model: str = "?"
    dataset: str = "?"
    metric: str = ""
    budget: Budget = Field(default_factory=lambda: Budget(approved_gpu_hours=0.0))
    phases: dict[str, PhaseCounts] = Field(default_factory=dict)
    proposal: Proposal | None = None
    pause_reason: str | None = None
    error: str | None = None

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def phases_in_run_order(self) -> list[tuple[str, PhaseCounts]]:
        """The phases with trials, in the order a campaign runs them."""
        return [(name, self.phases[name]) for name in PHASES if name in self.phases]


def summary(c: Campaign) -> CampaignSummary:
    """Per-phase trial counts and budget."""
    phases: dict[str, PhaseCounts] = {}
    for t in c.trials.values():
        p = phases.setdefault(t.phase, PhaseCounts())
        job = t.jobs[-1] if t.jobs else None
        if t.status is TrialStatus.SUCCEEDED:
            p.succeeded += 1
        elif t.status is TrialStatus.CANCELLED:
            p.cancelled += 1
        elif t.status is TrialStatus.FAILED:
            p.failed += 1
            if job is not None:
                why = job.diagnosis or job.state.value
                detail = f" ({job.reason})" if job.reason and job.reason != why else ""
                p.reasons.append(f"{t.hypothesis_id}/s{t.seed}: {why}{detail}")
        elif job is not None and job.state is JobState.RUNNING:
            p.running += 1
        else:
            p.pending += 1
            reason = (job.reason if job else None) or (job.state.value if job else "PENDING")
            p.pending_reasons[reason] = p.pending_reasons.get(reason, 0) + 1
    return CampaignSummary(
        campaign_id=c.campaign_id,
        state=c.state.value,
        phase=c.phase,
        model=c.model_family,
        dataset=c.dataset,
        metric=c.metric,
        budget=c.budget,
        phases=phases,
        proposal=c.proposal,
        pause_reason=c.pause_reason,
    )


def list_summaries(ws: Workspace) -> list[CampaignSummary]:
    """summary() of every campaign; an unreadable one is listed with its error, not fatal."""
    rows = []
    for cid in list_campaigns(ws):
        try:
            rows.append(summary(CampaignStore(ws, cid).load()))
        except ReaError as exc:
            rows.append(CampaignSummary(campaign_id=cid, state="UNREADABLE", error=str(exc)))
    return rows


def live_summary(ws: Workspace, campaign_id: str) -> CampaignSummary:
    """The saved campaign with its open jobs' states as the scheduler sees them now."""
    c = CampaignStore(ws, campaign_id).load()
    if c.state is CampaignState.RUNNING:
        open_jobs = {
            t.jobs[-1].job_id: t.jobs[-1]
            for t in c.trials.values()
            if t.jobs and t.status is TrialStatus.SUBMITTED
        }
        if open_jobs:
            infos = make_scheduler(ws).states(sorted(open_jobs))
            for jid, job in open_jobs.items():
                info = infos.get(jid)
                if info is not None:
                    job.state = info.state
                    job.reason = info.reason
            for t in c.trials.values():
                # ended but not yet ingested: show it as the scheduler sees it
                if t.status is TrialStatus.SUBMITTED and t.jobs and t.jobs[-1].has_ended:
                    ok = t.jobs[-1].state is JobState.COMPLETED
                    t.status = TrialStatus.SUCCEEDED if ok else TrialStatus.FAILED
    return summary(c)


def watchdog_hint(ws: Workspace) -> str | None:
    """What to tell a user whose workspace has no `rea tick` entry (None when it has one):
    a lost wake-up (cancelled, purged, a controller outage) is recovered only by a tick."""
    from rea_cli.cron import tick_installed

    if tick_installed(ws):
        return None
    return (
        "nothing runs `rea tick` for this workspace: if a wake-up job is lost (cancelled, "
        "purged, the controller down) the campaign stalls until one runs; install it with "
        "`rea cron install --apply` (every 5 min) or run `rea tick` by hand"
    )
