"""Budget arithmetic, in one place. Pure functions over job records.

- reserved: the worst case of every job that has not ended: its effective time limit (what the
  scheduler lets it run, overrun included) x its GPUs;
- spent: measured elapsed time x GPUs of every job, every run of a requeued job included;
- the guard: before any submission, spent + reserved + new <= approved, else nothing is
  submitted. The budget therefore cannot be exceeded by construction.

The insights view `budget_burn` computes the same spent and reserved figures in SQL from the
same records (tests/insights check they agree); `ENDED_STATES` is the rule both use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rea_cli.campaign.model import Campaign, JobRecord
from rea_cli.executor.scheduler import JobInfo, JobState

# States of a recorded job that has ended (JobState.has_ended), for the SQL views.
ENDED_STATES: tuple[str, ...] = tuple(s.value for s in JobState if s.has_ended)


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


def devices(gpus: int) -> int:
    """Devices a task is charged for: its GPUs, or one device (a CPU-only task still uses the
    allocation, and a zero here would let the guard accept any amount of work)."""
    return max(gpus, 1)


def reservation_hours(n_tasks: int, time_limit_min: float, gpus: int) -> float:
    """Worst case of n tasks: each runs to its (effective) time limit on its devices."""
    return n_tasks * time_limit_min / 60.0 * devices(gpus)


def effective_limit_min(time_limit_min: float, overrun_min: float) -> float:
    """What a task may really run: the limit the scheduler enforces (Slurm: whole minutes,
    rounded up) plus what it lets a job overrun before killing it."""
    return time_limit_min + overrun_min


def job_reserved_hours(job: JobRecord) -> float:
    return 0.0 if job.has_ended else job.time_limit_min / 60.0 * devices(job.gpus)


def reserved_hours(campaign: Campaign) -> float:
    return sum(job_reserved_hours(j) for t in campaign.trials.values() for j in t.jobs)


def spent_hours(campaign: Campaign) -> float:
    return sum(j.gpu_seconds for t in campaign.trials.values() for j in t.jobs) / 3600.0


def refresh(campaign: Campaign) -> None:
    """Recompute reserved and spent from the job records."""
    campaign.budget.reserved_gpu_hours = round(reserved_hours(campaign), 6)
    campaign.budget.spent_gpu_hours = round(spent_hours(campaign), 6)


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


def job_gpu_seconds(job: JobRecord, info: JobInfo | None, now: datetime) -> float:
    """GPU-seconds of one job: its record, or the scheduler's live elapsed time x GPUs when
    that is more (a job still running has spent more than its record says)."""
    if info is None:
        return job.gpu_seconds
    if info.elapsed_s is not None:
        live = info.elapsed_s
    elif info.started_at is not None:
        live = max(0.0, ((info.ended_at or now) - info.started_at).total_seconds())
    else:
        live = 0.0
    return max(job.gpu_seconds, live * devices(info.gpus or job.gpus))


def measured_spend_hours(campaign: Campaign, infos: dict[str, JobInfo], now: datetime) -> float:
    """GPU-hours measured so far: ended jobs from their records, live jobs from the scheduler."""
    jobs = [j for t in campaign.trials.values() for j in t.jobs]
    return sum(job_gpu_seconds(j, infos.get(j.job_id), now) for j in jobs) / 3600.0
