"""One exception for the benchmark: a one-line message that names the fix."""

from __future__ import annotations


class BenchError(Exception):
    """Bad input or a run the benchmark cannot use; its message is one line for the user."""
