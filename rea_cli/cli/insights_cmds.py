"""`rea insights ...`: read-only queries of the insights DB (the analyst copy when published)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from rea_cli.cli.common import console, err_console, handle_errors, workspace
from rea_cli.errors import UsageError

if TYPE_CHECKING:
    import pyarrow as pa

# duckdb and pyarrow are imported by the commands that use them, not when `rea` starts

app = typer.Typer(
    help="Query the insights DB (read-only): SQL, hypothesis effects, Parquet export, its path. "
    "Reads the published analyst copy; see docs/insights.md for the tables and views.",
    no_args_is_help=True,
)

FORMATS = ("table", "csv", "json", "parquet")


@app.command("sql")
@handle_errors
def sql_cmd(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help='One SELECT statement, e.g. "FROM campaigns".')],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table, csv, json or parquet.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (parquet needs it).")
    ] = None,
) -> None:
    """Run one read-only SELECT and print the rows."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if fmt == "parquet" and output is None:
        raise UsageError("parquet is binary: give --output FILE.parquet")
    if fmt == "table" and output is not None:
        raise UsageError("the table format is for the terminal: use --format csv, json or parquet")
    from rea_cli.app.analysis import query as run_query

    table = run_query(workspace(ctx), query)
    _emit(table, fmt, output)


@app.command("effects")
@handle_errors
def effects_cmd(
    ctx: typer.Context,
    model_family: Annotated[
        str | None, typer.Option("--model-family", "-m", help="e.g. dcn_v2")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="e.g. movielens-100k")
    ] = None,
    hypothesis: Annotated[str | None, typer.Option("--hypothesis", help="a hypothesis id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Gain of each hypothesis over its paired baseline (mean, 95% CI, n), across campaigns."""
    from rea_cli.app.analysis import effects

    rows = effects(
        workspace(ctx), model_family=model_family, dataset=dataset, hypothesis=hypothesis
    )
    if as_json:
        typer.echo(json.dumps(rows, indent=2, sort_keys=True, default=str))
        return
    if not rows:
        err_console.print(
            "no hypothesis effects yet: they appear once trials and their paired "
            "baseline trials have results"
        )
        return
    columns = (
        "model_family",
        "dataset",
        "metric",
        "hypothesis_id",
        "n",
        "mean_gain",
        "ci_low",
        "ci_high",
        "n_campaigns",
    )
    console.print(_rich_table([{c: r.get(c) for c in columns} for r in rows], list(columns)))


@app.command("export")
@handle_errors
def export_cmd(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Folder for the .parquet files.")],
) -> None:
    """Write every table and view to DIR/<name>.parquet."""
    from rea_cli.app.analysis import export

    files = export(workspace(ctx), directory)
    for path in files:
        typer.echo(str(path))


@app.command("path")
@handle_errors
def path_cmd(ctx: typer.Context) -> None:
    """Print the analyst copy's path, for duckdb / pandas / polars users (open it read-only)."""
    ws = workspace(ctx)
    typer.echo(str(ws.analyst_db_path))
    if not ws.analyst_db_path.exists():
        err_console.print("(not published yet: it appears after the first campaign step)")


def _emit(table: pa.Table, fmt: str, output: Path | None) -> None:
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    if fmt == "parquet":
        assert output is not None
        pq.write_table(table, output)
        return
    if fmt == "table":
        console.print(_rich_table(table.to_pylist(), table.column_names))
        return
    if fmt == "csv":
        buffer = io.BytesIO()
        pa_csv.write_csv(table, buffer)
        text = buffer.getvalue().decode("utf-8")
    else:
        text = json.dumps(table.to_pylist(), indent=2, default=str) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return escape(str(value))  # cells hold user text (titles, paths): never markup


def _rich_table(rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    table.caption = f"{len(rows)} row{'s' if len(rows) != 1 else ''}"
    return table
