"""Who runs rea, as the operating system says: the real uid and its user name.

Never an environment variable ($USER, $LOGNAME can be set to anything), so an approval records
the person whose process wrote it.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class User:
    name: str
    uid: int


def user_of(uid: int) -> User:
    """The user with this uid (a name like "uid1234" when the passwd database has none)."""
    try:
        return User(pwd.getpwuid(uid).pw_name, uid)
    except KeyError:  # a container without a passwd entry for this uid
        return User(f"uid{uid}", uid)


def current_user() -> User:
    return user_of(os.getuid())


def owner_of(path: Path) -> User:
    """The owner of a file: the user whose process created it."""
    return user_of(path.stat().st_uid)
