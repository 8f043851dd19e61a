"""Free text given by users (a campaign's goal, a review's note): bounded and printable.

It is stored in campaign.json, the journal and the insights DB, and printed in terminals and
reports: a cap keeps every one of those fast, and no control character (a terminal escape
sequence) gets through. Newlines and tabs are text.
"""

from __future__ import annotations

from rea_cli.errors import UsageError

MAX_TEXT = 2000  # characters (docs: README, `rea plan --help`)


def check_user_text(option: str, value: str) -> str:
    if len(value) > MAX_TEXT:
        raise UsageError(
            f"{option} is {len(value):,} characters long; keep it to {MAX_TEXT:,} (put longer "
            "notes in a file next to the campaign)"
        )
    bad = next((ch for ch in value if not ch.isprintable() and ch not in "\n\t"), None)
    if bad is not None:
        raise UsageError(f"{option} contains the control character {bad!r}; remove it")
    return value
