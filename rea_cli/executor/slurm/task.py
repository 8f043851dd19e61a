"""What one array task runs on the compute node: a command line, through submitit.

Standard library and submitit only: this module is pickled by value into the job, so a node
needs submitit and cloudpickle but not rea_cli itself.

On requeue (preemption, `scontrol requeue`, node failure) Slurm runs the same batch script
again and submitit calls this object again: the same argv runs as a new attempt, and the
trainer resumes from its checkpoint on its own. A task reaching its time limit is *not*
requeued by submitit (the agent's runbooks decide retries within the budget): it keeps running
until Slurm ends it, so its state is TIMEOUT, not FAILED.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import submitit
from submitit.core.utils import UncompletedJobError


def _ignore_usr2() -> None:
    # Slurm sends submitit's USR2 warning to every process of the step; the command must not
    # die of it (default action: terminate). An ignored signal stays ignored across exec.
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def slurm_task_id(environ: Mapping[str, str]) -> str:
    """`<array>_<task>` inside an array task, else the job id; "local" outside Slurm."""
    array_id = environ.get("SLURM_ARRAY_JOB_ID")
    task_id = environ.get("SLURM_ARRAY_TASK_ID")
    if array_id and task_id:
        return f"{array_id}_{task_id}"
    return environ.get("SLURM_JOB_ID", "local")


def exit_status(returncode: int) -> int:
    """Popen returncode -> process exit status (killed by signal N -> 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


class TaskCommand(submitit.helpers.Checkpointable):
    """Run `argv` in `workdir` with `env` added; stdout/stderr appended to log_dir/<job>.out/.err.

    A non-zero exit status of the command becomes the exit status of the Slurm task.
    """

    def __init__(
        self, argv: Sequence[str], workdir: str, env: Mapping[str, str], log_dir: str
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.workdir = str(workdir)
        self.env = dict(env)
        self.log_dir = str(log_dir)

    def __call__(self) -> int:
        log_dir = Path(self.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        stem = log_dir / slurm_task_id(os.environ)
        env = {**os.environ, **self.env}
        with open(f"{stem}.out", "ab") as out, open(f"{stem}.err", "ab") as err:
            try:
                proc = subprocess.Popen(
                    self.argv,
                    cwd=self.workdir,
                    env=env,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=_ignore_usr2,
                )
            except OSError as error:
                err.write(f"rea: cannot run {self.argv!r} in {self.workdir}: {error}\n".encode())
                sys.exit(127)
            # Slurm signals only this process (scancel, requeue, preemption) and submitit's
            # handler keeps it: pass SIGTERM on, so the command stops cleanly (the trainer
            # records a `signal` event and keeps its last checkpoint) before the SIGKILL.
            previous = signal.signal(signal.SIGTERM, lambda signum, _: proc.send_signal(signum))
            try:
                returncode = self._wait(proc)
            finally:
                signal.signal(signal.SIGTERM, previous)
        status = exit_status(returncode)
        if status:
            sys.exit(status)  # SystemExit passes through submitit: the task ends FAILED(status)
        return 0

    @staticmethod
    def _wait(proc: subprocess.Popen[bytes]) -> int:
        while True:
            try:
                return proc.wait()
            except UncompletedJobError:
                # submitit's USR2 handler says "timed out, not requeued": let the command go on
                # until Slurm's limit, so the task ends TIMEOUT (what the runbooks expect).
                continue

    def __repr__(self) -> str:
        return f"TaskCommand({self.argv!r}, workdir={self.workdir!r})"
