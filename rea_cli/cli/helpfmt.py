"""How options read in `--help`: a flag takes no value, so it shows none (typer prints
`<bool>` after every flag), and a counter shows how it is repeated (`-v` is `-v, -vv`)."""

from __future__ import annotations

from typing import Any

import typer.core

_original = typer.core.TyperOption.display_type_rich


def _display_type_rich(self: Any, ctx: Any) -> str | None:
    if getattr(self, "count", False):
        return "counter"
    if getattr(self, "is_flag", False) and getattr(self, "is_bool_flag", False):
        return None
    return _original(self, ctx)


def install() -> None:
    """Once, when the CLI is built."""
    typer.core.TyperOption.display_type_rich = _display_type_rich  # type: ignore[method-assign]
