"""Run one attempt of a trial: ``python -m ranking_models.train SPEC.json``.

Reads the trial spec (``contracts.TrialSpec``, docs/architecture.md), allocates
``attempts/<n>/`` (atomic mkdir), writes attempt.json (``AttemptStart``), streams metrics.jsonl,
and writes result.json (``AttemptResult``) atomically, on failure too.
Exit codes: 0 succeeded (also when stopped at a rung, early or pruned), 2 bad spec or data,
3 diverged, 4 out of memory, 1 anything else (a non-finite monitored valid metric included).
On SIGTERM/SIGUSR2 (CLI only) it records a "signal" event and exits 128 + signal without a
result.json: the scheduler's job state tells the agent what happened. Checkpoints are written at
epoch boundaries, so a requeued attempt resumes from the last completed epoch.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import platform
import resource
import secrets
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import ranking_models
from ranking_models.contracts import (
    EXIT_DISK_FULL,
    AttemptResult,
    AttemptStart,
    ContractError,
    FailureRecord,
    TrialSpec,
    read_contract,
)
from ranking_models.errors import ConfigError, DataChanged, DataError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_OOM = 0, 1, 2, 3, 4
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)

__all__ = ["job_id_from_env", "main", "process_age_s", "run_trial"]


# Signals received by the handler. Raised inside torch's C++ (autograd, pickling), _Interrupted
# can come back wrapped as a RuntimeError: this list says it was a signal all the same.
_RECEIVED: list[int] = []


class _Interrupted(BaseException):
    """Raised from a signal handler to unwind the training loop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def job_id_from_env(env: dict[str, str] | None = None) -> str | None:
    """REA_JOB_ID, else SLURM_ARRAY_JOB_ID_SLURM_ARRAY_TASK_ID, else SLURM_JOB_ID, else None."""
    env = dict(os.environ) if env is None else env
    if env.get("REA_JOB_ID"):
        return env["REA_JOB_ID"]
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None


def process_age_s() -> float | None:
    """Seconds since this process started, None where /proc cannot say.

    The kernel's start time of a forked child is its fork, which is what a trial started by
    fork from a warm runner should count. starttime (field 22 of /proc/self/stat) is in clock
    ticks of CLOCK_BOOTTIME, so the age has a resolution of one tick (10 ms).
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        # the command name (field 2) may hold spaces and parentheses: count after its last ")"
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return age if age >= 0 else None


def allocate_attempt(attempts_dir: Path) -> tuple[int, Path]:
    """Create the next free attempts/<n>/ with os.mkdir (atomic: concurrent callers differ)."""
    attempts_dir.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name) for p in attempts_dir.iterdir() if p.name.isdigit()]
    n = max(taken, default=0) + 1
    while True:
        try:
            os.mkdir(attempts_dir / str(n))
            return n, attempts_dir / str(n)
        except FileExistsError:
            n += 1


def write_json_atomic(path: Path, obj: Any) -> None:
    # created 0666 minus the umask, like every file of the workspace (a teammate's rea reads it)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, allow_nan=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "ranking_models": ranking_models.__version__}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
    return out


class AttemptRecorder:
    """The attempt folder: attempt.json at start, metrics.jsonl as it goes, result.json last."""

    def __init__(self, spec: TrialSpec, attempt: int, folder: Path) -> None:
        self.spec, self.attempt, self.folder = spec, attempt, folder
        self.job_id = job_id_from_env()
        self.host = socket.gethostname()
        self.started_at = now_iso()
        self.t0 = time.monotonic()
        self.start = AttemptStart(
            attempt=attempt,
            trial_id=spec.trial_id,
            job_id=self.job_id,
            host=self.host,
            pid=os.getpid(),
            started_at=self.started_at,
        )
        write_json_atomic(folder / "attempt.json", self.start.model_dump(mode="json"))
        self._metrics: TextIO = open(folder / "metrics.jsonl", "a", buffering=1)  # noqa: SIM115

    def ready(self, n_params: int, device: str) -> None:
        """attempt.json again, with the footprint no batch size changes (host memory)."""
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
        self.start = self.start.model_copy(
            update={"n_params": n_params, "device": device, "ready_memory_mb": round(rss_mb, 1)}
        )
        write_json_atomic(self.folder / "attempt.json", self.start.model_dump(mode="json"))

    def emit(self, event: dict[str, Any]) -> None:
        self._metrics.write(json.dumps(event) + "\n")
        self._metrics.flush()

    def close(self) -> None:
        self._metrics.close()

    def write_result(self, **fields: Any) -> None:
        """result.json from the given AttemptResult fields; identity and timing filled here."""
        result = AttemptResult(
            trial_id=self.spec.trial_id,
            attempt=self.attempt,
            job_id=self.job_id,
            host=self.host,
            started_at=self.started_at,
            ended_at=now_iso(),
            wall_time_s=round(time.monotonic() - self.t0, 3),
            versions=versions(),
            **fields,
        )
        write_json_atomic(self.folder / "result.json", result.dump())


def configure_threads() -> None:
    """REA_TORCH_THREADS, else SLURM_CPUS_PER_TASK, else min(4, usable CPUs).

    OpenMP threads spin while waiting by default; on a shared, busy box that makes a small
    model 10x slower, so threads wait passively unless the environment says otherwise (this
    only takes effect when torch is not imported yet, as in ``python -m ranking_models.train``).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    default = int(os.environ.get("SLURM_CPUS_PER_TASK") or min(4, cpus or 1))
    try:
        n = int(os.environ.get("REA_TORCH_THREADS", default))
    except ValueError:
        n = default
    torch.set_num_threads(max(1, n))


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text
    )


def _is_disk_full(exc: BaseException) -> bool:
    """No space left (or quota exceeded), also when torch's writer wraps the OSError."""
    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS:
            return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


def _failure(kind: str, message: str, exit_code: int, **where: Any) -> FailureRecord:
    return FailureRecord.model_validate(
        {"kind": kind, "message": message, "exit_code": exit_code, **where}
    )


def run_trial(spec_path: str | os.PathLike[str], *, handle_signals: bool = False) -> int:
    """Run one attempt of the trial in spec_path; return the exit code (never raises)."""
    try:
        spec: TrialSpec = read_contract(Path(spec_path), TrialSpec)
    except ContractError as exc:
        log.error("bad trial spec: %s (see docs/architecture.md)", exc)
        return EXIT_BAD_INPUT
    try:
        attempt, folder = allocate_attempt(Path(spec.attempts_dir))
        recorder = AttemptRecorder(spec, attempt, folder)
    except OSError as exc:
        log.error("cannot create an attempt folder under %s: %s", spec.attempts_dir, exc)
        return EXIT_DISK_FULL if _is_disk_full(exc) else EXIT_ERROR
    previous = _install_signal_handlers() if handle_signals else {}
    try:
        try:
            return _run(spec, recorder)
        except OSError as exc:
            if not _is_disk_full(exc):
                raise
            # not even result.json could be written: the exit code says it
            log.error("the disk is full (%s): the attempt could not record its result", exc)
            return EXIT_DISK_FULL
        except _Interrupted as exc:
            signum = exc.signum
        except Exception:
            # The handler's exception raised inside an import or C++ code can come back as
            # something else (numpy's init turns it into an ImportError): a signal all the same.
            if not _RECEIVED:
                raise
            signum = _RECEIVED[0]
        name = signal.Signals(signum).name
        recorder.emit(
            {"event": "signal", "signal": name, "time": round(time.monotonic() - recorder.t0, 3)}
        )
        log.warning(
            "received %s: stopping; the last epoch checkpoint is kept for the next attempt", name
        )
        return 128 + signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        try:
            recorder.close()
        except OSError as exc:  # flushing the metrics onto a full disk
            log.error("could not close %s: %s", recorder.folder, exc)


def _install_signal_handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: FrameType | None) -> None:
        _RECEIVED.append(signum)
        raise _Interrupted(signum)

    _RECEIVED.clear()
    previous: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGUSR2):
        previous[signum] = signal.signal(signum, handler)
    return previous


def _run(spec: TrialSpec, recorder: AttemptRecorder) -> int:
    from ranking_models.config import validate_config

    try:
        config = validate_config(spec.config)
    except ConfigError as exc:
        recorder.write_result(
            status="failed", failure=_failure("config_error", str(exc), EXIT_BAD_INPUT)
        )
        log.error("%s", exc)
        return EXIT_BAD_INPUT
    configure_threads()
    import torch

    from ranking_models.data.fingerprint import check_fingerprint
    from ranking_models.data.processing import load_data
    from ranking_models.trainer import Trainer, TrialFailure, peak_memory_mb, pick_device

    if _RECEIVED:  # a signal during the imports above may have been swallowed by one of them
        raise _Interrupted(_RECEIVED[0])
    device = pick_device()
    trainer: Trainer | None = None
    common: dict[str, Any] = {"device": str(device)}
    try:
        if spec.data_fingerprint is not None:
            check_fingerprint(spec.data, spec.data_fingerprint)
        data = load_data(spec.data, features=config.features)
        trainer = Trainer(
            config, data, spec.seed, recorder.emit, spec.checkpoint_dir, device, prune=spec.prune
        )
        common["n_params"] = trainer.n_params
        recorder.ready(trainer.n_params, str(device))
        outcome = trainer.run()
    except DataError as exc:
        log.error("%s", exc)
        kind = "data_changed" if isinstance(exc, DataChanged) else "data_error"
        recorder.write_result(
            status="failed", failure=_failure(kind, str(exc), EXIT_BAD_INPUT), **common
        )
        return EXIT_BAD_INPUT
    except TrialFailure as exc:
        log.error("trial failed (%s): %s", exc.kind, exc.message)
        recorder.write_result(
            status="failed", failure=exc.record(), **common, **_progress(trainer, device)
        )
        return exc.exit_code
    except Exception as exc:
        if _RECEIVED:  # our signal handler's exception, wrapped by torch's C++ on its way up
            raise _Interrupted(_RECEIVED[0]) from exc
        oom, full = _is_oom(exc), _is_disk_full(exc)
        code = EXIT_OOM if oom else EXIT_DISK_FULL if full else EXIT_ERROR
        kind = "oom" if oom else "disk_full" if full else "error"
        where = {"epoch": trainer.epoch, "step": trainer.global_step} if trainer else {}
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        log.exception("trial failed")
        if oom and device.type == "cuda":
            torch.cuda.empty_cache()
        failure = _failure(kind, message, code, **where)
        recorder.write_result(
            status="failed", failure=failure, **common, **_progress(trainer, device)
        )
        return code
    recorder.write_result(
        status="succeeded",
        valid=outcome.valid,
        test=outcome.test,
        epochs_completed=outcome.epochs_completed,
        best_epoch=outcome.best_epoch,
        resumed_from_epoch=outcome.resumed_from_epoch,
        stopped=outcome.stopped,
        curve=outcome.curve,
        device_time_s=round(outcome.device_time_s, 3),
        startup_s=_startup_s(trainer),
        samples_seen=outcome.samples_seen,
        samples_per_s=round(outcome.samples_per_s, 1),
        peak_memory_mb=round(peak_memory_mb(device), 1),
        **common,
    )
    return EXIT_OK


def _startup_s(trainer: Any) -> float | None:
    """Process start to the trainer's first timed work (its first training step)."""
    age = process_age_s()
    if trainer is None or trainer.work_started is None or age is None:
        return None
    return round(max(0.0, age - (time.monotonic() - trainer.work_started)), 3)


def _progress(trainer: Any, device: Any) -> dict[str, Any]:
    """What a failed attempt got done: its completed epochs and their best."""
    from ranking_models.trainer import peak_memory_mb

    if trainer is None:
        return {}
    return {
        "epochs_completed": trainer.epoch,
        "best_epoch": trainer.best_epoch,
        "valid": trainer.best_valid,
        "resumed_from_epoch": trainer.resumed_from,
        "curve": trainer.curve(),
        "device_time_s": round(trainer.device_time, 3),
        "startup_s": _startup_s(trainer),
        "samples_seen": trainer.train_samples,
        "peak_memory_mb": round(peak_memory_mb(device), 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m ranking_models.train SPEC.json", file=sys.stderr)
        return EXIT_BAD_INPUT
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return run_trial(args[0], handle_signals=True)


def _exit_now(code: int) -> None:
    """Exit without the interpreter's teardown.

    With torch loaded, the teardown costs about 1 s of CPU on a small box (measured), a tenth
    of a MovieLens trial and most of a tiny one. Every file of the attempt is closed (result.json
    fsynced) by now; only the standard streams and the log handlers need flushing.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
