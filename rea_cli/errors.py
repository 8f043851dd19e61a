"""One exception root. The CLI turns each into one line on stderr and an exit code.

UsageError (exit 2): the input is wrong (bad config, unknown campaign, bad argument).
RefusedError (exit 1): the input is fine but the action is not allowed now (approving twice,
launching an unapproved campaign, over budget). Every message says what is wrong and how to fix it.
"""


class ReaError(Exception):
    exit_code = 1


class UsageError(ReaError):
    exit_code = 2


class RefusedError(ReaError):
    exit_code = 1


class SchedulerError(ReaError):
    """The scheduler refused or failed a request (after retries)."""

    exit_code = 1


class LockedError(RefusedError):
    """Another process holds a lock (campaign resume, watchdog, DB writer)."""
