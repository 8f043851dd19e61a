"""The embedded local backend: tasks run as local processes, state lives in files."""

from rea_cli.executor.local.backend import LocalScheduler

__all__ = ["LocalScheduler"]
