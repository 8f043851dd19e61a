"""Mirror a campaign folder into the insights DB and publish the analyst copy; catch up with
whatever an earlier sync missed (a kill -9, a full disk, a DB held by a reader)."""

from __future__ import annotations

import logging

from rea_cli.campaign.store import CampaignStore, list_campaigns
from rea_cli.errors import ReaError
from rea_cli.workspace import Workspace

log = logging.getLogger(__name__)


def sync_insights(ws: Workspace, store: CampaignStore, *, publish: bool) -> bool:
    """A locked or damaged DB loses nothing: the files stay, the watermark says the DB is
    behind, and the next sync (a resume, a tick) ingests them. True when it synced."""
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
        log.warning("insights not updated this time (%s); the next resume or tick retries", exc)
        return False
    return True


def behind(ws: Workspace, campaign_ids: list[str]) -> list[str]:
    """The campaigns whose folder has changed since the analyst copy was published (or that
    it lacks): compared by the folder digest the copy's watermark records."""
    from rea_cli.insights import folder_digest, read_watermarks

    published = read_watermarks(ws.analyst_db_path)
    out = []
    for cid in campaign_ids:
        try:
            digest, _ = folder_digest(ws.campaign_dir(cid))
        except OSError as exc:
            log.warning("cannot read campaign folder %s (%s); not synced", cid, exc)
            continue
        if published.get(cid) != digest:
            out.append(cid)
    return out


def catch_up(ws: Workspace, store: CampaignStore) -> bool:
    """Sync and publish this campaign if the analyst copy is behind its folder."""
    if not behind(ws, [store.campaign_id]):
        return False
    return sync_insights(ws, store, publish=True)


def catch_up_all(ws: Workspace) -> list[str]:
    """catch_up for every campaign of the workspace; the ids synced."""
    return [
        cid
        for cid in behind(ws, list_campaigns(ws))
        if sync_insights(ws, CampaignStore(ws, cid), publish=True)
    ]
