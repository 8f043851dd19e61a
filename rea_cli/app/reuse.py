"""Trial reuse across campaigns: a trial whose identity (the whole config, the data and its
fingerprint, the seed) matches one already measured in this workspace takes its result instead
of training again. The workspace keeps one small file per succeeded trial identity in
.rea/results/ (written at ingest, temp file + rename)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ranking_models.contracts import AttemptResult, TrialSpec
from rea_cli.fsutil import read_json, write_json_atomic
from rea_cli.workspace import Workspace


class CachedResult(BaseModel):
    campaign_id: str
    trial_id: str
    result: AttemptResult


def trial_key(spec: TrialSpec, fingerprint: dict[str, Any] | None) -> str:
    """What makes two trials the same experiment (never their ids or folders)."""
    text = json.dumps(
        {"config": spec.config, "data": spec.data, "fingerprint": fingerprint, "seed": spec.seed},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _path(ws: Workspace, key: str) -> Path:
    return ws.state_dir / "results" / f"{key}.json"


def lookup(ws: Workspace, key: str) -> CachedResult | None:
    data = read_json(_path(ws, key))
    if data is None:
        return None
    try:
        return CachedResult.model_validate(data)
    except ValidationError:
        return None  # a damaged entry only costs a retraining


def remember(
    ws: Workspace, key: str, campaign_id: str, trial_id: str, result: AttemptResult
) -> None:
    if _path(ws, key).exists():
        return
    entry = CachedResult(campaign_id=campaign_id, trial_id=trial_id, result=result)
    write_json_atomic(_path(ws, key), entry.model_dump(mode="json", by_alias=True))
