"""`rea insights ...`: read-only queries of the insights DB (the analyst copy when published)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from rea_cli.cli.common import console, err_console, handle_errors, workspace
from rea_cli.errors import UsageError

if TYPE_CHECKING:
    pass

# duckdb and pyarrow are imported by the commands that use them, not when `rea` starts

app = typer.Typer(
    help="Query the insights DB (read-only): SQL, hypothesis effects, Parquet export, its path. "
    "Reads the published analyst copy; see docs/insights.md for the tables and views.",
    no_args_is_help=True,
)

FORMATS = ("table", "csv", "json", "parquet")
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")]


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
    force: ForceOpt = False,
) -> None:
    """Run one read-only SELECT and print the rows (or write them to --output)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if fmt == "parquet" and output is None:
        raise UsageError("parquet is binary: give --output FILE.parquet")
    if fmt == "table" and output is not None:
        raise UsageError("the table format is for the terminal: use --format csv, json or parquet")
    from rea_cli.app.analysis import check_output, encode, save
    from rea_cli.app.analysis import query as run_query

    ws = workspace(ctx)
    target = check_output(ws, output, force=force) if output is not None else None
    table = run_query(ws, query)
    if target is not None:
        save(table, fmt, target)
    elif fmt == "table":
        console.print(_rich_table(table.to_pylist(), table.column_names))
    else:
        typer.echo(encode(table, fmt).decode("utf-8"), nl=False)


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
    force: ForceOpt = False,
) -> None:
    """Write every table and view to DIR/<name>.parquet."""
    from rea_cli.app.analysis import export

    files = export(workspace(ctx), directory, force=force)
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


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _rich_table(rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    table.caption = f"{len(rows)} row{'s' if len(rows) != 1 else ''}"
    return table
