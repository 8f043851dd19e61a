"""Fault injection for the crash tests: the process SIGKILLs itself at a named point, exactly
like a node dying mid-step. Unset in normal use.

REA_CRASH_AT=point[,point...]  die when reaching any listed point
REA_CRASH_ONCE_DIR=DIR         ...but only the first time each point is reached (a marker file
                               per point in DIR), so a test can crash every step of one campaign
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

ENV = "REA_CRASH_AT"
ONCE_ENV = "REA_CRASH_ONCE_DIR"


def crash_point(name: str) -> None:
    points = os.environ.get(ENV)
    if not points or name not in points.split(","):
        return
    once = os.environ.get(ONCE_ENV)
    if once:
        marker = Path(once) / name
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
