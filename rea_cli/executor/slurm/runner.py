"""The one place that runs Slurm commands: retries transient failures, counts calls.

Every sbatch/squeue/sacct/scontrol/scancel/sacctmgr call of the Slurm backend goes through
`SlurmRunner.run`, so benchmarks can count calls per command and tests can see what ran.
"""

from __future__ import annotations

import collections
import logging
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rea_cli.errors import SchedulerError

logger = logging.getLogger(__name__)

# stderr fragments of failures that go away by themselves (controller busy or restarting).
TRANSIENT_PATTERNS = (
    "socket timed out",
    "unable to contact slurm controller",
    "slurm_receive_msg",
    "connection refused",
    "connection reset",
    "temporarily unavailable",
    "try again",
    "slurm temporarily unable",
    "slurmctld not responding",
    "zero bytes were transmitted or received",
    "communication connection failure",
    "slurmdbd: connection",
    "error connecting to slurmdbd",
)


def is_transient(stderr: str) -> bool:
    """True when a failed Slurm command is worth retrying as is."""
    text = stderr.lower()
    return any(p in text for p in TRANSIENT_PATTERNS)


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def error_line(self) -> str:
        """The last non-empty stderr line (Slurm's actual complaint), or the exit status."""
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit status {self.returncode}"


class SlurmRunner:
    """Run Slurm commands with retries and backoff; count calls per command name."""

    def __init__(
        self,
        *,
        retries: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._sleep = sleep
        self.calls: collections.Counter[str] = collections.Counter()

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        before_retry: Callable[[], CommandResult | None] | None = None,
    ) -> CommandResult:
        """Run argv; retry transient failures with exponential backoff.

        check=True raises SchedulerError for a failure (after retries); check=False returns it.
        `before_retry` runs before each retry and may return a result that ends the loop
        (sbatch uses it to find a job that was submitted although the reply was lost).
        """
        argv = tuple(argv)
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            if attempt and before_retry is not None:
                recovered = before_retry()
                if recovered is not None:
                    return recovered
            result = self._run_once(argv)
            if result.ok or not is_transient(result.stderr) or attempt == self.retries:
                break
            logger.warning(
                "%s failed (%s); retrying in %.1f s", argv[0], result.error_line(), delay
            )
            self._sleep(delay)
            delay *= 2
        if check and not result.ok:
            tries = f" after {attempt + 1} tries" if attempt else ""
            raise SchedulerError(f"{argv[0]} failed{tries}: {result.error_line()}")
        return result

    def pause(self, seconds: float) -> None:
        """Wait between polls (the injected sleep: tests do not wait)."""
        self._sleep(seconds)

    def _run_once(self, argv: tuple[str, ...]) -> CommandResult:
        self.calls[argv[0]] += 1
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
                env=submission_env(),
            )
        except FileNotFoundError:
            raise SchedulerError(
                f"Slurm command {argv[0]!r} not found: run rea on a Slurm login node "
                '(or set backend = "local" in rea.toml)'
            ) from None
        except subprocess.TimeoutExpired:
            return CommandResult(argv, 124, "", f"socket timed out after {self.timeout_s:.0f} s")
        logger.debug("%s -> %d", " ".join(argv), proc.returncode)
        return CommandResult(argv, proc.returncode, proc.stdout, proc.stderr)


# Variables a Slurm job exports about itself. A wake-up job runs `rea resume`, which submits the
# next arrays from inside that job: sbatch would pass them on (--export=ALL) and, e.g., the
# wake-up's SLURM_MEM_PER_CPU next to the array's --mem makes srun refuse to start the task.
_KEEP = frozenset({"SLURM_CONF"})


def submission_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for Slurm commands: ours, minus the enclosing job's SLURM_* variables."""
    env = dict(os.environ if environ is None else environ)
    return {k: v for k, v in env.items() if not k.startswith("SLURM_") or k in _KEEP}
