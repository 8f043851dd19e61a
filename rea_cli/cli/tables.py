"""Rows for a terminal: a table when every column fits whole in the console's width, else one
block per row ("column: value" lines, like psql's expanded display). A value is never cut
(ids are what people copy), and no column is squeezed to a letter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

PADDING = 3  # padding and the blank separator of each column (no vertical borders)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def fits(rows: Sequence[Sequence[str]], columns: Sequence[str], width: int) -> bool:
    """Every column at its full width (its header, its longest value) fits in `width`."""
    widths = [len(c) for c in columns]
    for row in rows:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], max((len(line) for line in value.splitlines()), default=0))
    return sum(widths) + PADDING * len(columns) <= width


def render(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    width: int,
    *,
    title: str | None = None,
    caption: str | None = None,
) -> RenderableType:
    """A table when it fits whole in `width`, else the vertical layout."""
    text_rows = [[cell(r.get(c)) for c in columns] for r in rows]
    if fits(text_rows, columns, width):
        table = Table(
            caption=caption,
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            show_lines=False,
        )
        for c in columns:
            table.add_column(Text(c), no_wrap=True, overflow="fold")
        for row in text_rows:
            # cells hold user text (titles, paths, SQL results): plain text, never markup
            table.add_row(*(Text(value) for value in row))
        # the title above, in the console's width (a table's title wraps in the table's, and
        # cuts a long path mid-word)
        return Group(Text(title, style="bold"), table) if title else table
    return vertical(text_rows, columns, title=title, caption=caption)


def vertical(
    rows: Sequence[Sequence[str]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    caption: str | None = None,
) -> RenderableType:
    """One block per row; a long value wraps inside its own column, never cut."""
    key_width = max((len(c) for c in columns), default=1)
    parts: list[RenderableType] = []
    if title:
        parts.append(Text(title, style="bold"))  # Text: a title with [brackets] is not markup
    for n, row in enumerate(rows, 1):
        parts.append(Text(f"-[ row {n} ]" + "-" * 20, style="dim"))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True, width=key_width)
        grid.add_column(no_wrap=True, width=1)
        grid.add_column(overflow="fold")
        for c, value in zip(columns, row, strict=True):
            grid.add_row(Text(c), "|", Text(value))
        parts.append(grid)
    if caption:
        parts.append(Text(caption, style="dim"))
    return Group(*parts)


def print_rows(
    console: Console,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    caption: str | None = None,
) -> None:
    console.print(render(rows, columns, console.width, title=title, caption=caption))
