"""Start trial tasks by forking the runner, which has imported the trainer once.

`import torch` costs about a CPU second, paid again by every `python -m ranking_models.train SPEC`
process. A runner with trial tasks to start imports `ranking_models.train` and torch once, then
forks each trial task. The child is set up as `subprocess.Popen(..., start_new_session=True)`
sets up the exec'd trial: its own session, the task's working directory and environment, stdin
from /dev/null, stdout/stderr to the job's log files, default signal handlers, and none of the
runner's files. It holds no slot lock: the runner frees a task's slot when it reaps the task,
so a leftover descendant, or a sibling that inherited the lock, would keep the slot taken.

It forks only what is safe to fork: argv exactly `[sys.executable, "-m", "ranking_models.train",
SPEC]`, the task's environment (REA_JOB_ID aside) the one the trainer was imported under, a
working directory that shadows no imported module, a runner with one Python thread, no native
thread started since the import (torch's OpenMP pool is not fork-safe; the runner runs no torch
op) and CUDA not initialised. Anything else, and everything when REA_LOCAL_FORK=0, is spawned
as a new process.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import runpy
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NoReturn, Protocol

logger = logging.getLogger(__name__)

FORK_ENV = "REA_LOCAL_FORK"
JOB_ID_ENV = "REA_JOB_ID"
TRIAL_MODULE = "ranking_models.train"
TRIAL_PROCESS_NAME = "rea-trial"
_PRELOAD = ("torch", TRIAL_MODULE)
# Imported too where they exist: what the trainer imports next (about 0.2 CPU-s per trial).
_PRELOAD_OPTIONAL = ("ranking_models.trainer", "ranking_models.data.processing")
# A fresh interpreter ignores these; everything else starts with the default action.
_IGNORED_SIGNALS = {signal.SIGPIPE, signal.SIGXFSZ}
_EXIT_SETUP_FAILED = 127


class TaskProcess(Protocol):
    """What the runner needs of a started task: subprocess.Popen or ForkedTask."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...


def trial_spec(argv: Sequence[str], executable: str | None = None) -> str | None:
    """The spec path when `argv` is exactly `python -m ranking_models.train SPEC`, else None."""
    python = sys.executable if executable is None else executable
    if len(argv) == 4 and list(argv[:3]) == [python, "-m", TRIAL_MODULE]:
        return argv[3]
    return None


def fork_enabled(env: Mapping[str, str]) -> bool:
    return env.get(FORK_ENV, "1").strip() != "0"


class ForkedTask:
    """A forked task, polled like subprocess.Popen (returncode < 0: killed by that signal)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.returncode = 0  # reaped by someone else: the status is lost (Popen says 0 too)
            return self.returncode
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class TrialForker:
    """Imports the trainer once, on the first trial task, and forks trial tasks from it."""

    def __init__(self) -> None:
        self._env: dict[str, str] | None = None  # imported under this (REA_JOB_ID aside)
        self._failed = False
        self._keep_fds: frozenset[int] = frozenset()  # opened by the imported libraries
        self._modules: frozenset[str] = frozenset()  # top-level modules the import loaded
        self._threads = 1

    def prepare(self, argv: Sequence[str], workdir: str, env: Mapping[str, str]) -> None:
        """Import the trainer if this task is a trial to fork and it is not imported yet.

        Slow (about a second): call it holding no lock."""
        if self._env is None and not self._failed and _wants_fork(argv, env):
            self._preload(_without_job_id(env), workdir)

    def can_fork(self, argv: Sequence[str], workdir: str, env: Mapping[str, str]) -> bool:
        if self._env is None or not _wants_fork(argv, env):
            return False
        why = self._why_not(_without_job_id(env), workdir)
        if why:
            logger.info("starting %s as a new process: %s", env.get(JOB_ID_ENV), why)
        return why is None

    def start(
        self,
        argv: Sequence[str],
        workdir: str,
        env: Mapping[str, str],
        stdout: str,
        stderr: str,
    ) -> ForkedTask:
        """Fork a trial task; raises OSError, as Popen does, when it cannot be set up."""
        spec = trial_spec(argv)
        if spec is None:
            raise ValueError(f"not a trial command: {argv}")
        with contextlib.ExitStack() as fds:
            out = _open_fd(fds, stdout, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            err = _open_fd(fds, stderr, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            ready, report = os.pipe()
            fds.callback(os.close, ready)
            try:
                _flush_stdio()  # or the child would write the runner's buffered output again
                pid = os.fork()
                if pid == 0:
                    _child(spec, workdir, dict(env), out, err, report, self._keep_fds)
            finally:
                os.close(report)  # the child's copy is the last: EOF once it is ready or dead
            failure = _read_all(ready)
        if failure:
            os.waitpid(pid, 0)
            raise OSError(failure)
        return ForkedTask(pid)

    def _preload(self, env: dict[str, str], workdir: str) -> None:
        modules, fds = set(sys.modules), _open_fds()
        try:
            with _imported_as_trial(env, workdir):
                for name in _PRELOAD:
                    importlib.import_module(name)
                for name in _PRELOAD_OPTIONAL:
                    with contextlib.suppress(ImportError):
                        importlib.import_module(name)
        except Exception as exc:
            self._failed = True
            logger.warning(
                "cannot import the trainer in the runner (%s); trials start as new processes", exc
            )
            return
        self._env = env
        self._keep_fds = frozenset(_open_fds() - fds)
        self._modules = frozenset(m.partition(".")[0] for m in set(sys.modules) - modules)
        self._threads = _native_threads()
        logger.info("imported %s in the runner: trial tasks start by fork", TRIAL_MODULE)

    def _why_not(self, env: dict[str, str], workdir: str) -> str | None:
        if env != self._env:
            return "its environment differs from the one the trainer was imported under"
        if threading.active_count() != 1:
            return "the runner has other Python threads"
        if _native_threads() > self._threads:
            return "the runner started threads since importing the trainer"
        torch: Any = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            return "CUDA is initialised in the runner"
        shadow = _shadowing(workdir, self._modules)
        if shadow:
            return f"its working directory holds {shadow}, which it would import instead"
        return None


def _wants_fork(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    return trial_spec(argv) is not None and fork_enabled(env)


def _without_job_id(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != JOB_ID_ENV}


@contextlib.contextmanager
def _imported_as_trial(env: dict[str, str], workdir: str) -> Iterator[None]:
    """Run imports in the environment and sys.path the exec'd trial would have."""
    saved_env, saved_path = dict(os.environ), list(sys.path)
    os.environ.clear()
    os.environ.update(env)
    # As ranking_models.train does before it imports torch: OpenMP reads this once, at load.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _set_script_dir(workdir)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path


def _set_script_dir(workdir: str) -> None:
    """`python -m` puts the working directory first on sys.path (unless -P/PYTHONSAFEPATH)."""
    if not sys.flags.safe_path and sys.path:
        sys.path[0] = workdir


def _shadowing(workdir: str, modules: frozenset[str]) -> str | None:
    """An entry of `workdir` named like a module the runner imported, else None."""
    try:
        names = os.listdir(workdir)
    except OSError:
        return None  # the child reports the missing directory as the task's start failure
    return next((n for n in sorted(names) if n.partition(".")[0] in modules), None)


def _native_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _open_fds() -> set[int]:
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        return {int(n) for n in names if n.isdigit() and _is_open(int(n))}
    return {fd for fd in range(1024) if _is_open(fd)}


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _open_fd(stack: contextlib.ExitStack, path: str, flags: int) -> int:
    fd = os.open(path, flags | os.O_CLOEXEC, 0o666)
    stack.callback(os.close, fd)
    return fd


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


# --- the child -----------------------------------------------------------------------------


def _child(
    spec: str,
    workdir: str,
    env: dict[str, str],
    out: int,
    err: int,
    report: int,
    keep: frozenset[int],
) -> NoReturn:
    """Set up the forked task, tell the runner through `report` (closed: ready), run the trial."""
    try:
        _setup(workdir, out, err, report, keep)
    except BaseException as exc:
        message = str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(BaseException):
            os.write(report, message.encode())
        os._exit(_EXIT_SETUP_FAILED)
    code = 1
    try:
        os.close(report)
        _become_trial(spec, workdir, env)
        # As `python -m` does: a fresh copy of the module runs as __main__ (what it imports,
        # torch and the trainer, is loaded already).
        sys.modules.pop(TRIAL_MODULE, None)
        runpy.run_module(TRIAL_MODULE, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = _exit_status(exc.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        _flush_stdio()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # die of SIGINT, as an interpreter would
    except BaseException:
        traceback.print_exc()
    finally:
        # What interpreter exit does: join non-daemon threads, then run atexit (logging flush).
        with contextlib.suppress(BaseException):
            threading._shutdown()  # type: ignore[attr-defined]
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        _flush_stdio()
        os._exit(code)


def _setup(workdir: str, out: int, err: int, report: int, keep: frozenset[int]) -> None:
    os.setsid()  # own session and process group: cancel kills the task and all it started
    os.chdir(workdir)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    # Let go of every file the runner holds (slot and array locks, other jobs' logs). /dev/null
    # goes in their place rather than a close: a runner object that still names the number
    # would otherwise close, when collected, whatever file the trial opened under it next.
    for fd in _open_fds() - keep - {0, 1, 2, null, report}:
        os.dup2(null, fd, inheritable=False)
    os.close(null)


def _become_trial(spec: str, workdir: str, env: dict[str, str]) -> None:
    """What differs between the runner and a fresh `python -m ranking_models.train SPEC`."""
    _default_signals()
    # Its command line stays the runner's: give it a name of its own in ps and top.
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as comm:
        comm.write(TRIAL_PROCESS_NAME)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [TRIAL_MODULE, spec]  # runpy puts the module's file in argv[0]
    _set_script_dir(workdir)
    # The interpreter's own stdio (fds 0-2, now the job's), should a caller have replaced them.
    sys.stdin = sys.__stdin__ or sys.stdin
    sys.stdout = sys.__stdout__ or sys.stdout
    sys.stderr = sys.__stderr__ or sys.stderr
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)  # the trial configures logging itself, as a fresh process
    root.setLevel(logging.WARNING)
    numpy: Any = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()  # fresh global state per task (Python's random reseeds at fork)


def _default_signals() -> None:
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        handler = signal.SIG_IGN if sig in _IGNORED_SIGNALS else signal.SIG_DFL
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _exit_status(value: object) -> int:
    """The exit status `sys.exit(value)` gives."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1
