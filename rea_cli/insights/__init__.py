"""The insights DB: a derived, queryable DuckDB index of the campaign folders (docs/insights.md).

The agent calls sync_campaign after each step; analysts read the published copy; the planner
reads hypothesis_effects.
"""

from rea_cli.insights.db import InsightsError, InsightsLocked, init_db, storage_version_of
from rea_cli.insights.files import folder_digest
from rea_cli.insights.ingest import SyncReport, sync_campaign
from rea_cli.insights.publish import publish
from rea_cli.insights.queries import (
    cost_measurements,
    export_parquet,
    hypothesis_effects,
    readable_db,
    relation_names,
    run_sql,
    strategy_effects,
)
from rea_cli.insights.schema import LATEST_VERSION, VIEWS
from rea_cli.insights.watermark import read_watermarks

__all__ = [
    "LATEST_VERSION",
    "VIEWS",
    "InsightsError",
    "InsightsLocked",
    "SyncReport",
    "cost_measurements",
    "export_parquet",
    "folder_digest",
    "hypothesis_effects",
    "init_db",
    "publish",
    "read_watermarks",
    "readable_db",
    "relation_names",
    "run_sql",
    "storage_version_of",
    "strategy_effects",
    "sync_campaign",
]
