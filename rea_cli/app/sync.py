"""Mirror a campaign folder into the insights DB and publish the analyst copy."""

from __future__ import annotations

import logging

from rea_cli.campaign.store import CampaignStore
from rea_cli.errors import ReaError
from rea_cli.workspace import Workspace

log = logging.getLogger(__name__)


def sync_insights(ws: Workspace, store: CampaignStore, *, publish: bool) -> None:
    """A locked or damaged DB loses nothing: the files stay and the next sync ingests them."""
    from rea_cli.insights import sync_campaign  # duckdb: imported only when syncing

    settings = ws.settings.insights
    try:
        sync_campaign(
            ws.db_path,
            store.dir,
            analyst_path=ws.analyst_db_path if publish else None,
            storage_version=settings.storage_version,
            retries=settings.lock_retries,
        )
    except ReaError as exc:
        log.warning("insights not updated this time (%s); the next wake-up will retry", exc)
