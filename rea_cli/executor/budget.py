"""The budget guard: reserved = worst case of unfinished jobs, spent = measured. Pure functions.

Before any submission: spent + reserved + new <= approved, else nothing is submitted. The budget
therefore cannot be exceeded by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from rea_cli.campaign.model import Campaign, JobRecord
from rea_cli.executor.scheduler import JobState


@dataclass(frozen=True)
class BudgetCheck:
    ok: bool
    approved: float
    spent: float
    reserved: float
    new: float

    @property
    def message(self) -> str:
        return (
            f"spent {self.spent:.3f} + reserved {self.reserved:.3f} + new {self.new:.3f} GPU-h "
            f"{'<=' if self.ok else '>'} approved {self.approved:.3f} GPU-h"
        )


def _terminal(job: JobRecord) -> bool:
    try:
        return JobState(job.state).is_terminal
    except ValueError:
        return False


def job_reserved_hours(job: JobRecord) -> float:
    return 0.0 if _terminal(job) else job.time_limit_min / 60.0 * job.gpus


def refresh(campaign: Campaign) -> None:
    """Recompute reserved and spent from the job records."""
    jobs = [j for t in campaign.trials.values() for j in t.jobs]
    campaign.budget.reserved_gpu_hours = round(sum(job_reserved_hours(j) for j in jobs), 6)
    campaign.budget.spent_gpu_hours = round(sum(j.gpu_seconds for j in jobs) / 3600.0, 6)


def check(campaign: Campaign, new_gpu_hours: float) -> BudgetCheck:
    refresh(campaign)
    b = campaign.budget
    total = b.spent_gpu_hours + b.reserved_gpu_hours + new_gpu_hours
    return BudgetCheck(
        ok=total <= b.approved_gpu_hours + 1e-9,
        approved=b.approved_gpu_hours,
        spent=b.spent_gpu_hours,
        reserved=b.reserved_gpu_hours,
        new=new_gpu_hours,
    )
