"""`rea insights` through Typer's CliRunner, against real DuckDB files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import typer
from insights_builder import paired_campaign
from typer.testing import CliRunner

from rea_cli.cli import insights_cmds
from rea_cli.insights import VIEWS, sync_campaign
from rea_cli.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]


def _app(root: Path) -> typer.Typer:
    """A stand-in for the main CLI: puts the Workspace in ctx.obj, mounts the insights group."""
    main = typer.Typer()

    @main.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = Workspace(root)

    main.add_typer(insights_cmds.app, name="insights")
    return main


@pytest.fixture
def synced(ws: Workspace) -> Workspace:
    b = paired_campaign(ws.root)
    sync_campaign(ws.db_path, b.dir, analyst_path=ws.analyst_db_path)
    return ws


def run(ws: Workspace, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(_app(ws.root), ["insights", *args])
    return result.exit_code, result.stdout, result.stderr


def test_sql_formats(synced: Workspace, tmp_path: Path) -> None:
    q = "SELECT trial_id, seed FROM trials WHERE hypothesis_id = 'emb32' ORDER BY seed"
    code, out, _ = run(synced, "sql", q, "--format", "csv")
    assert code == 0
    assert out.splitlines() == [
        '"trial_id","seed"',
        '"validation-emb32-s0",0',
        '"validation-emb32-s1",1',
        '"validation-emb32-s2",2',
    ]
    code, out, _ = run(synced, "sql", q, "--format", "json")
    assert code == 0 and json.loads(out)[2] == {"trial_id": "validation-emb32-s2", "seed": 2}
    code, out, _ = run(synced, "sql", "SELECT campaign_id, created_at FROM campaigns")
    assert code == 0 and "c20261122-ab12" in out and "1 row" in out
    target = tmp_path / "t.parquet"
    code, _, _ = run(synced, "sql", q, "--format", "parquet", "--output", str(target))
    assert code == 0 and pq.read_table(target).num_rows == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["SELEC 1"], "error: bad SQL: Parser Error"),
        (["SELECT * FROM no_such_table"], "error: bad SQL: Catalog Error"),
        (["DELETE FROM trials"], "only SELECT queries run here (got DELETE)"),
        (["COPY trials TO 'x.csv'"], "only SELECT queries run here (got COPY)"),
        (["ATTACH 'x.duckdb'"], "only SELECT queries run here (got ATTACH)"),
        (["SELECT 1; SELECT 2"], "give exactly one SELECT statement (got 2)"),
        (["SELECT 1", "--format", "xml"], "unknown format 'xml'; use one of: table, csv"),
        (["SELECT 1", "--format", "parquet"], "parquet is binary: give --output"),
    ],
)
def test_sql_usage_errors_are_one_line_exit_2(synced: Workspace, args: list[str], message: str):
    code, out, err = run(synced, "sql", *args)
    assert code == 2, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and message in err
    assert "Traceback" not in err


def test_sql_does_not_change_the_db(synced: Workspace) -> None:
    before = synced.analyst_db_path.read_bytes()
    run(synced, "sql", "DROP TABLE trials")
    run(synced, "sql", "SELECT count(*) FROM trials")
    assert synced.analyst_db_path.read_bytes() == before


def test_sql_without_any_db(ws: Workspace) -> None:
    code, _, err = run(ws, "sql", "SELECT 1")
    assert code == 2 and "no insights DB yet" in err


def test_sql_falls_back_to_the_writable_db(ws: Workspace) -> None:
    b = paired_campaign(ws.root)
    sync_campaign(ws.db_path, b.dir)  # not published
    code, out, _ = run(ws, "sql", "SELECT count(*) AS n FROM trials", "-f", "csv")
    assert code == 0 and out.splitlines()[1] == "6"


def test_effects(synced: Workspace) -> None:
    code, out, _ = run(synced, "effects", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["hypothesis_id"] for r in rows] == ["emb32"]
    assert rows[0]["n"] == 3 and rows[0]["mean_gain"] == pytest.approx(0.005)
    code, out, _ = run(synced, "effects", "--model-family", "deepfm", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = run(synced, "effects", "-m", "dcn_v2", "-d", "movielens-100k")
    assert code == 0 and "emb32" in out


def test_export(synced: Workspace, tmp_path: Path) -> None:
    code, out, _ = run(synced, "export", str(tmp_path / "out"))
    assert code == 0
    names = {Path(line).stem for line in out.splitlines()}
    assert {"campaigns", "trials", "attempts", "metrics", *VIEWS} <= names
    assert "ingested_files" not in names and "schema_version" not in names
    assert pq.read_table(tmp_path / "out" / "metrics.parquet").num_rows == 36


def test_path(ws: Workspace) -> None:
    code, out, err = run(ws, "path")
    assert code == 0 and out.strip() == str(ws.analyst_db_path) and "not published yet" in err


def test_every_command_has_help(ws: Workspace) -> None:
    for command in ("sql", "effects", "export", "path"):
        code, out, _ = run(ws, command, "--help")
        assert code == 0 and "Usage" in out
        assert insights_cmds.app.registered_commands
    for info in insights_cmds.app.registered_commands:
        assert info.callback is not None and info.callback.__doc__


def test_insights_sql_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import rea_cli.cli.insights_cmds, rea_cli.insights\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_analyst_copy_is_read_only_on_disk(synced: Workspace) -> None:
    assert synced.analyst_db_path.stat().st_mode & 0o222 == 0
    con = duckdb.connect(str(synced.analyst_db_path), read_only=True)
    assert con.execute("SELECT count(*) FROM trials").fetchall() == [(6,)]
    con.close()
