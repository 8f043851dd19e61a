"""The campaign folder: the only code that writes campaign state (campaign.json + journal).

Every write is atomic (temp + rename) and every state change is journaled. A lock file excludes
concurrent writers (two wake-ups, a wake-up and `rea cancel`, the watchdog).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rea_cli.campaign.journal import append_event, read_events
from rea_cli.campaign.model import Approval, Campaign
from rea_cli.campaign.state import CampaignState, check_transition
from rea_cli.errors import LockedError, UsageError
from rea_cli.fsutil import LOCK_MODE, read_json, write_json_atomic
from rea_cli.workspace import Workspace

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_campaign_id(campaign_id: str) -> str:
    """A campaign id is a folder name: refused before anything touches the disk."""
    if not _ID.fullmatch(campaign_id):
        shown = campaign_id if len(campaign_id) <= 80 else campaign_id[:80] + "..."
        raise UsageError(
            f"invalid campaign id {shown!r}; use letters, digits, '-' and '_' (at most 64), "
            "starting with a letter or digit"
        )
    return campaign_id


class CampaignStore:
    def __init__(self, ws: Workspace, campaign_id: str) -> None:
        self.ws = ws
        self.campaign_id = check_campaign_id(campaign_id)
        self.dir = ws.campaign_dir(campaign_id)

    # ---------------------------------------------------------------- paths
    @property
    def campaign_path(self) -> Path:
        return self.dir / "campaign.json"

    @property
    def plan_path(self) -> Path:
        return self.dir / "plan.json"

    @property
    def approval_path(self) -> Path:
        return self.dir / "approval.json"

    @property
    def journal_path(self) -> Path:
        return self.dir / "journal.jsonl"

    @property
    def lock_path(self) -> Path:
        return self.dir / ".lock"

    def phase_dir(self, phase: str) -> Path:
        return self.dir / "phases" / phase

    def trial_dir(self, trial_id: str) -> Path:
        return self.dir / "trials" / trial_id

    def spec_path(self, trial_id: str) -> Path:
        return self.trial_dir(trial_id) / "spec.json"

    def attempts_dir(self, trial_id: str) -> Path:
        return self.trial_dir(trial_id) / "attempts"

    # ---------------------------------------------------------------- state
    def exists(self) -> bool:
        return self.campaign_path.is_file()

    def load(self) -> Campaign:
        self._check_exists()
        try:
            data = json.loads(self.campaign_path.read_bytes().decode("utf-8"))
            return Campaign.model_validate(data)
        except (ValueError, ValidationError) as exc:  # not JSON, not UTF-8, not the model
            first = str(exc).splitlines()[0]
            raise UsageError(
                f"{self.campaign_path} is corrupt ({first}); restore it from a backup, or "
                f"remove the folder {self.dir} to drop the campaign"
            ) from None

    def _check_exists(self) -> None:
        if not self.exists():
            raise UsageError(
                f"unknown campaign {self.campaign_id!r} in {self.ws.root}; "
                "list campaigns with `rea status`"
            )

    def save(self, campaign: Campaign) -> None:
        write_json_atomic(self.campaign_path, campaign.dump())

    def event(self, name: str, /, **details: Any) -> dict[str, Any]:
        return append_event(self.journal_path, self.campaign_id, name, **details)

    def events(self) -> list[dict[str, Any]]:
        return read_events(self.journal_path)

    def transition(self, campaign: Campaign, target: CampaignState, /, **details: Any) -> None:
        """Change state (checked against the state machine), save, then journal it."""
        check_transition(self.campaign_id, campaign.state, target)
        previous = campaign.state
        campaign.state = target
        self.save(campaign)
        self.event("state", previous=previous.value, state=target.value, **details)

    def read_plan_bytes(self) -> bytes:
        try:
            return self.plan_path.read_bytes()
        except FileNotFoundError:
            raise UsageError(f"{self.plan_path} is missing; re-plan with `rea plan`") from None

    def approval(self) -> Approval | None:
        """The approval record, None before approval; a damaged one is an error, not None."""
        if not self.approval_path.exists():
            return None
        data = read_json(self.approval_path)
        try:
            return Approval.model_validate(data)
        except ValidationError:
            raise UsageError(
                f"{self.approval_path} is damaged; restore it, or cancel the campaign and plan "
                "a new one"
            ) from None

    # ---------------------------------------------------------------- lock
    @contextmanager
    def lock(self, wait_s: float = 0.0) -> Iterator[None]:
        """Exclusive lock on an existing campaign (flock; released by the kernel if we die).

        flock needs no write access: a teammate in a shared workspace can lock a campaign whose
        lock file someone else created."""
        self._check_exists()
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
        except PermissionError:
            fd = os.open(self.lock_path, os.O_RDONLY)
        deadline = time.monotonic() + wait_s
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockedError(
                            f"campaign {self.campaign_id} is busy (another rea process holds "
                            f"{self.lock_path}); try again in a moment"
                        ) from None
                    time.sleep(0.1)
            # whoever holds the lock is about to write: a damaged journal is refused now,
            # before anything is written, not halfway through
            self.events()
            yield
        finally:
            os.close(fd)


def list_campaigns(ws: Workspace) -> list[str]:
    """Ids of the campaign folders (a folder rea cannot have made is not a campaign)."""
    if not ws.campaigns_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in ws.campaigns_dir.iterdir()
        if _ID.fullmatch(p.name) and (p / "campaign.json").is_file()
    )
