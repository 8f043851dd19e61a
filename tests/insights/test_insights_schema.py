"""Schema creation, migrations (upgrading the committed v1 file) and STORAGE_VERSION."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from insights_builder import paired_campaign

from rea_cli.insights import LATEST_VERSION, VIEWS, InsightsError, init_db, sync_campaign
from rea_cli.insights.db import migrate, schema_version, storage_version_of
from rea_cli.insights.schema import MIGRATIONS

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "insights" / "v1.duckdb"


def _versions(path: Path) -> list[int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [
            r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        ]
    finally:
        con.close()


def _column_type(con: duckdb.DuckDBPyConnection, table: str, column: str) -> str:
    rows = con.execute(
        "SELECT data_type FROM duckdb_columns() WHERE table_name = ? AND column_name = ?",
        [table, column],
    ).fetchall()
    return str(rows[0][0])


def test_migrations_are_numbered_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert MIGRATIONS[-1].version == LATEST_VERSION


def test_init_db_creates_latest_schema_and_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "insights.duckdb"
    assert init_db(db) == LATEST_VERSION
    assert init_db(db) == LATEST_VERSION
    assert _versions(db) == [m.version for m in MIGRATIONS]
    con = duckdb.connect(str(db), read_only=True)
    views = {
        r[0]
        for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    }
    con.close()
    assert set(VIEWS) <= views


def test_upgrade_committed_v1_file_keeps_its_data(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    shutil.copyfile(FIXTURE, db)
    assert _versions(db) == [1]

    assert init_db(db) == LATEST_VERSION

    assert _versions(db) == [m.version for m in MIGRATIONS] == [1, 2, 3, 4]
    con = duckdb.connect(str(db), read_only=True)
    try:
        # v3: job records carry fractional minutes (the local backend enforces seconds)
        assert _column_type(con, "jobs", "time_limit_min") == "DOUBLE"
        splits = con.execute(
            "SELECT trial_id, line, split, auc FROM metrics ORDER BY trial_id, line"
        ).fetchall()
        assert splits == [
            ("v-baseline-s0", 1, "train", None),
            ("v-baseline-s0", 2, "valid", 0.77),
            ("v-lr3-s0", 1, "valid", 0.78),
        ]
        assert con.execute("SELECT state, spent_gpu_hours FROM campaigns").fetchall() == [
            ("ACCEPTED", 1.5)
        ]
        assert con.execute("SELECT fidelity_key FROM trials LIMIT 1").fetchall() == [
            ('{"train.epochs":1}',)
        ]
        for view in VIEWS:
            con.sql(f"SELECT * FROM {view}").to_arrow_table()
    finally:
        con.close()


def test_upgraded_file_takes_new_campaigns(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    shutil.copyfile(FIXTURE, db)
    campaign = paired_campaign(tmp_path / "ws")
    report = sync_campaign(db, campaign.dir)
    assert report.schema_version == LATEST_VERSION
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM campaigns").fetchall() == [(2,)]
    con.close()


@pytest.mark.parametrize("start", ["fresh", "v1 file"])
def test_fractional_time_limits_are_kept(tmp_path: Path, start: str) -> None:
    db = tmp_path / "insights.duckdb"
    if start == "v1 file":
        shutil.copyfile(FIXTURE, db)
    b = paired_campaign(tmp_path / "ws")  # 6 jobs: 30 min x 1 GPU each
    b.trial("validation-emb32-s9", "emb32", 9)
    b.job("validation-emb32-s9", "7_9", state="RUNNING", time_limit_min=2.5, gpus=2)
    b.write_campaign()
    sync_campaign(db, b.dir)
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert _column_type(con, "jobs", "time_limit_min") == "DOUBLE"
        limits = con.execute(
            "SELECT time_limit_min FROM jobs WHERE campaign_id = ? AND job_id = '7_9'",
            [b.campaign_id],
        ).fetchall()
        assert limits == [(2.5,)]
        burn = con.execute(
            "SELECT limit_gpu_hours FROM budget_burn "
            "WHERE campaign_id = ? AND phase = 'validation'",
            [b.campaign_id],
        ).fetchall()
        assert burn[0][0] == pytest.approx((6 * 30 + 2.5 * 2) / 60)
    finally:
        con.close()


def test_failed_migration_rolls_back_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "old.duckdb"
    shutil.copyfile(FIXTURE, db)
    broken = MIGRATIONS[1].__class__(2, "broken", (*MIGRATIONS[1].statements[:5], "SELEC oops"))
    monkeypatch.setattr("rea_cli.insights.db.MIGRATIONS", (MIGRATIONS[0], broken))
    con = duckdb.connect(str(db))
    with pytest.raises(duckdb.ParserException):
        migrate(con)
    assert schema_version(con) == 1
    columns = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'campaigns'"
        ).fetchall()
    }
    assert "reserved_gpu_hours" not in columns
    con.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "insights.duckdb"
    init_db(db)
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO schema_version (version, name) VALUES (99, 'from the future')")
    con.close()
    with pytest.raises(InsightsError, match="newer than this rea"):
        init_db(db)


def test_foreign_duckdb_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE sales (x INTEGER)")
    con.close()
    with pytest.raises(InsightsError, match="not an insights DB"):
        init_db(db)


def test_storage_version_option(tmp_path: Path) -> None:
    old = tmp_path / "old-clients.duckdb"
    new = tmp_path / "default.duckdb"
    init_db(old, storage_version="v1.4.0")
    init_db(new)
    assert storage_version_of(old) == "v1.4.0+"
    assert storage_version_of(new) != "v1.4.0+"
    # the analyst copy is a byte copy: same format
    campaign = paired_campaign(tmp_path / "ws")
    analyst = tmp_path / "analyst.duckdb"
    sync_campaign(old, campaign.dir, analyst_path=analyst)
    assert storage_version_of(analyst) == "v1.4.0+"


def test_bad_storage_version_is_a_usage_error(tmp_path: Path) -> None:
    from rea_cli.errors import UsageError

    with pytest.raises(UsageError, match="bad storage version"):
        init_db(tmp_path / "x.duckdb", storage_version="1.4; DROP")
