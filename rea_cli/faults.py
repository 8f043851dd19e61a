"""Fault injection for the crash tests: REA_CRASH_AT=<point> makes this process SIGKILL itself
when it reaches that point, exactly like a node dying mid-step. Unset in normal use."""

from __future__ import annotations

import os
import signal

ENV = "REA_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
