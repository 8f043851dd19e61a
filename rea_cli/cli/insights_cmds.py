"""`rea insights ...`: read-only queries of the insights DB (the analyst copy when published)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

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
        _print_rows(table.to_pylist(), table.column_names)
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
    _print_rows(rows, list(columns))


@app.command("export")
@handle_errors
def export_cmd(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Folder for the .parquet files.")],
    force: ForceOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the files as JSON.")] = False,
) -> None:
    """Write every table and view to DIR/<name>.parquet."""
    from rea_cli.app.analysis import export

    files = export(workspace(ctx), directory, force=force)
    if as_json:
        typer.echo(json.dumps([str(p) for p in files], indent=2))
        return
    for path in files:
        typer.echo(str(path))


@app.command("report")
@handle_errors
def report_cmd(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="HTML file (default: <workspace>/insights-report.html)."
        ),
    ] = None,
    force: ForceOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Write the cross-campaign report: the effect of each hypothesis, with plots (HTML)."""
    from rea_cli.app.analysis import write_insights_report

    path, n = write_insights_report(workspace(ctx), output, force=force)
    if as_json:
        typer.echo(json.dumps({"report": str(path), "effects": n}, indent=2))
        return
    typer.echo(f"insights report written to {path} ({n} hypothesis effect(s))")


@app.command("path")
@handle_errors
def path_cmd(ctx: typer.Context) -> None:
    """Print the analyst copy's path, for duckdb / pandas / polars users (open it read-only)."""
    ws = workspace(ctx)
    typer.echo(str(ws.analyst_db_path))
    if not ws.analyst_db_path.exists():
        err_console.print("(not published yet: it appears after the first campaign step)")


def _print_rows(rows: list[dict[str, Any]], columns: list[str]) -> None:
    from rea_cli.cli.tables import print_rows

    caption = f"{len(rows)} row{'s' if len(rows) != 1 else ''}"
    print_rows(console, rows, columns, caption=caption)
