"""One exception root. The CLI turns each into one line on stderr and an exit code.

UsageError (exit 2): the input is wrong (bad config, unknown campaign, bad argument).
RefusedError (exit 1): the input is fine but the action is not allowed now (approving twice,
launching an unapproved campaign, over budget). Every message says what is wrong and how to fix it.
"""

from __future__ import annotations

import errno


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


class DiskFullError(ReaError):
    """No space left on the device (or quota exceeded) while writing a file."""


class FilePermissionError(ReaError):
    """The OS refused to read or write a file of the workspace."""


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
SHARED_HINT = "docs/security.md, shared workspaces"


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def os_error(exc: OSError, action: str = "") -> ReaError:
    """An OSError as one line naming the file and the fix (the one place that words them)."""
    where = exc.filename if exc.filename is not None else "a file of the workspace"
    what = f"{action} {where}" if action else str(where)
    reason = exc.strerror or type(exc).__name__
    if exc.errno in DISK_FULL_ERRNOS:
        return DiskFullError(
            f"{what}: {reason}; free space on that filesystem (see `df -h`), then run the "
            "command again: nothing was half-written and rea continues where it stopped"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return FilePermissionError(
            f"{what}: permission denied; ask its owner to give your group access "
            f"(`chmod g+rw` on files, `g+rwxs` on folders), or make the workspace shared with "
            f"`rea init --shared` (see {SHARED_HINT})"
        )
    if exc.errno == errno.EROFS:
        return FilePermissionError(f"{what}: read-only filesystem; use a writable workspace")
    return ReaError(f"{what}: {reason}; check that the file is there and readable")
