"""Process I/O of the local backend: identify processes, test liveness, signal process groups."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from rea_cli.executor.local.records import ProcIdentity

_PROC = Path("/proc")


def identity(pid: int) -> ProcIdentity:
    """The identity of a live process `pid`, with its start time where /proc gives it."""
    stat = _stat(pid)
    return ProcIdentity(pid, int(stat[19]) if stat else None, boot_id())


def boot_id() -> str | None:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def is_alive(proc: ProcIdentity | None) -> bool:
    """Whether the recorded process still runs (not exited, not a zombie, pid not reused)."""
    if proc is None:
        return False
    if proc.boot_id and boot_id() not in (None, proc.boot_id):
        return False  # rebooted since: every recorded pid is gone
    try:
        os.kill(proc.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    if not _PROC.is_dir():
        return True  # no /proc (not Linux): trust kill(0)
    stat = _stat(proc.pid)
    if stat is None or stat[0] == "Z":
        return False
    return proc.start_ticks is None or int(stat[19]) == proc.start_ticks


def signal_group(proc: ProcIdentity, sig: signal.Signals) -> None:
    """Send `sig` to the process group led by `proc` (tasks run in their own session)."""
    stat = _stat(proc.pid)
    if stat and proc.start_ticks is not None and int(stat[19]) != proc.start_ticks:
        return  # pid reused, so the group we started is gone (a live group keeps its id)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in process group `pgid`."""
    if not _PROC.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat and stat[0] != "Z" and int(stat[2]) == pgid:
            return True
    return False


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()
