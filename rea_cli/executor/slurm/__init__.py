"""Slurm backend of the Scheduler interface (submitit arrays, sbatch wake-up jobs)."""

from rea_cli.executor.slurm.runner import SlurmRunner
from rea_cli.executor.slurm.scheduler import SlurmScheduler

__all__ = ["SlurmRunner", "SlurmScheduler"]
