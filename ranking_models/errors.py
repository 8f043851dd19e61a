"""One exception root for ranking_models; each error is one line that names the fix."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class RankingModelsError(Exception):
    """Root of the errors raised by ranking_models."""


class ConfigError(RankingModelsError, ValueError):
    """A trial config (model / train section) is invalid."""


class DataError(RankingModelsError, ValueError):
    """A data spec, a data file or its schema is invalid or unreadable."""


class DataChanged(DataError):
    """The data source differs from its fingerprint taken when the plan was approved."""


def join_names(names: Iterable[Any]) -> str:
    return ", ".join(str(n) for n in names)


def describe_pydantic_error(
    exc: Any, prefix: str, valid_fields: dict[str, list[str]] | None = None
) -> str:
    """One line for a pydantic ValidationError: the first problem, its field, what is allowed.

    valid_fields maps a location prefix (e.g. "model") to the field names valid there, so an
    unknown field can be reported with the list of valid ones.
    """
    # An unknown field is usually a typo that also explains a "missing" one: report it first.
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = [str(p) for p in err["loc"]]
    kind = err["type"]
    got = err.get("input")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    # Discriminated unions put the tag (e.g. "dcn_v2") into the location; drop it.
    tag = err.get("ctx", {}) or {}
    tagged = loc[0] in ("model", "data") if loc else False
    if tagged and len(loc) >= 2 and valid_fields and loc[1] in valid_fields.get("_tags", []):
        loc = [loc[0], *loc[2:]]
    path = ".".join(loc) if loc else "(top level)"
    if kind == "extra_forbidden":
        parent = ".".join(loc[:-1])
        valid = (valid_fields or {}).get(parent)
        hint = f"; valid fields: {join_names(valid)}" if valid else ""
        return f"{prefix}: unknown field '{path}'{hint}{more}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = (valid_fields or {}).get("_tags", [])
        expected = tag.get("expected_tags") or join_names(f"'{t}'" for t in tags)
        disc = tag.get("discriminator", "")
        what = f"'{tag.get('tag')}'" if kind == "union_tag_invalid" else "missing"
        disc_name = str(disc).strip("'")
        field = f"{path}.{disc_name}" if path != "(top level)" else disc_name
        return f"{prefix}: {field} is {what}; allowed values: {expected}{more}"
    if kind == "missing":
        return f"{prefix}: missing required field '{path}'{more}"
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{prefix}: {path}: {err['msg']}{shown}{more}"
