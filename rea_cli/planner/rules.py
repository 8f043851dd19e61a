"""Applicability rules of the knowledge base: a tiny, safe language over profile facts.

A rule is ``<fact> <op> <literal>`` (op: == != < <= > >= in) or a bare ``<fact>`` (a boolean
fact). Literals use TOML syntax (numbers, "strings", true/false, [lists]) and are parsed with
tomllib, never eval(). Facts are a flat mapping ``name -> value`` in a few namespaces:

- ``data.*``: the summary fields of the baseline data's profile (ranking_models.data.profile);
- ``training.*``: read off the baseline's own learning curve, absent until the baseline ran;
- ``model.*``, ``train.*``, ``features.*``: the baseline config, flattened by section.

A rule on an absent fact is false; :func:`evaluate` says so (``Outcome.ABSENT``) so that the
engine can show which rules wait for the baseline's curve and evaluate them again later.
Parsing is pure and checks the fact name and the literal's type, so a typo fails at load time.
"""

from __future__ import annotations

import enum
import math
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

Kind = Literal["bool", "number", "any"]
Op = Literal["==", "!=", "<", "<=", ">", ">=", "in"]

# Summary fields of ranking_models.data.profile.DataProfile (a test keeps the two in step).
DATA_FACTS: dict[str, Kind] = {
    "n_rows": "number",
    "n_train": "number",
    "label_rate": "number",
    "n_categorical": "number",
    "n_numerical": "number",
    "max_abs_skew": "number",
    "n_skewed": "number",
    "n_heavy_tailed": "number",
    "n_nonmonotone": "number",
    "max_cardinality": "number",
    "max_rare_mass": "number",
    "imbalance": "number",
    "best_pair_score": "number",
}
# Read off the baseline's learning curve by the engine (docs/knowledge.md defines each).
TRAINING_FACTS: dict[str, Kind] = {
    "improving_at_end": "bool",
    "last_gain_rel": "number",
    "best_epoch_frac": "number",
    "overfit_gap": "number",
    "unstable": "bool",
    "epochs": "number",
}
CONFIG_SECTIONS = ("model", "train", "features")
NAMESPACES = ("data", "training", *CONFIG_SECTIONS)

_RULE = re.compile(
    r"^\s*(?P<fact>[a-z][a-z0-9_]*\.[a-z0-9_]+)\s*"
    r"(?:(?P<op>==|!=|<=|>=|<|>|in(?=[\s\[]))\s*(?P<literal>(?![=<>!])\S.*?))?\s*$"
)
_PLACEHOLDER = re.compile(r"\{(?P<fact>[a-z][a-z0-9_]*\.[a-z0-9_]+)(?::(?P<spec>[^{}]*))?\}")


class RuleError(ValueError):
    """A rule or an observation template is malformed; the message says how to fix it."""


class Outcome(enum.Enum):
    TRUE = "true"
    FALSE = "false"
    ABSENT = "absent"  # the fact is not known (yet): the rule counts as false


@dataclass(frozen=True)
class Rule:
    text: str
    fact: str
    op: Op | None  # None: a bare boolean fact
    value: Any = None

    @property
    def namespace(self) -> str:
        return self.fact.split(".", 1)[0]


@cache
def config_fact_names() -> frozenset[str]:
    """Every dotted config key of any family (``model.embedding_dim``, ``train.epochs``...)."""
    from ranking_models.config import FAMILIES, valid_keys

    return frozenset(k for family in FAMILIES for k in valid_keys(family))


def fact_kind(name: str) -> Kind:
    """The kind of a known fact; RuleError naming the fix for an unknown one."""
    namespace, _, field = name.partition(".")
    if namespace == "data" and field in DATA_FACTS:
        return DATA_FACTS[field]
    if namespace == "training" and field in TRAINING_FACTS:
        return TRAINING_FACTS[field]
    if namespace in CONFIG_SECTIONS and name in config_fact_names():
        return "any"
    if namespace not in NAMESPACES:
        raise RuleError(
            f"unknown fact namespace '{namespace}' in '{name}'; use one of: {', '.join(NAMESPACES)}"
        )
    known = {"data": DATA_FACTS, "training": TRAINING_FACTS}.get(namespace)
    names = [f"{namespace}.{k}" for k in known] if known is not None else None
    if names is None:
        names = sorted(k for k in config_fact_names() if k.startswith(f"{namespace}."))
    raise RuleError(f"unknown fact '{name}'; known {namespace} facts: {', '.join(names)}")


def parse_rule(text: str) -> Rule:
    """Parse and type-check one rule; RuleError with a one-line fix when it is malformed."""
    if not isinstance(text, str):
        raise RuleError(f"a rule is a string like 'data.n_numerical >= 1', got {text!r}")
    m = _RULE.match(text)
    if not m:
        raise RuleError(
            f"cannot parse rule {text!r}; write '<fact> <op> <value>' "
            "(op: == != < <= > >= in) or a bare boolean fact, e.g. 'data.n_numerical >= 1'"
        )
    fact, op, literal = m["fact"], m["op"], m["literal"]
    kind = fact_kind(fact)
    if op is None:
        if kind == "number":
            raise RuleError(f"rule {text!r}: {fact} is a number; compare it, e.g. '{fact} > 0'")
        return Rule(text.strip(), fact, None)
    value = _literal(text, literal)
    _check_types(text, fact, kind, op, value)
    return Rule(text.strip(), fact, typing.cast(Op, op), value)


def _literal(text: str, literal: str) -> Any:
    try:
        value = tomllib.loads(f"v = {literal}")["v"]
    except tomllib.TOMLDecodeError:
        raise RuleError(
            f"rule {text!r}: {literal!r} is not a number, a quoted string, true/false or a "
            '[list]; quote strings, e.g. model.family == "dcn_v2"'
        ) from None
    items = value if isinstance(value, list) else [value]
    if not all(_is_scalar(v) for v in items):
        raise RuleError(
            f"rule {text!r}: {literal!r} must be a number, a string, true/false or a list of them"
        )
    return value


def _is_scalar(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    return isinstance(v, bool | int | str)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_types(text: str, fact: str, kind: Kind, op: str, value: Any) -> None:
    if op == "in":
        if not isinstance(value, list) or not value:
            raise RuleError(f"rule {text!r}: 'in' needs a non-empty [list] of values")
        return
    if isinstance(value, list):
        raise RuleError(f"rule {text!r}: a list goes with 'in', not '{op}'")
    if op in ("<", "<=", ">", ">=") and not _is_number(value):
        raise RuleError(f"rule {text!r}: '{op}' compares numbers; {value!r} is not one")
    if kind == "bool" and not isinstance(value, bool):
        raise RuleError(f"rule {text!r}: {fact} is true or false; compare it with true/false")
    if kind == "number" and not _is_number(value):
        raise RuleError(f"rule {text!r}: {fact} is a number; {value!r} is not one")


def evaluate(rule: Rule, facts: Mapping[str, Any]) -> Outcome:
    """Whether the rule holds for these facts; ABSENT when its fact is missing (or None)."""
    if facts.get(rule.fact) is None:
        return Outcome.ABSENT
    return Outcome.TRUE if _holds(rule, facts[rule.fact]) else Outcome.FALSE


def _holds(rule: Rule, got: Any) -> bool:
    want = rule.value
    if rule.op is None:
        return got is True
    if rule.op == "in":
        return any(_equal(got, w) for w in want)
    if rule.op == "==":
        return _equal(got, want)
    if rule.op == "!=":
        return not _equal(got, want)
    if not (_is_number(got) and _is_number(want)):
        return False  # an ordered comparison of a string or a bool never holds
    return {
        "<": got < want,
        "<=": got <= want,
        ">": got > want,
        ">=": got >= want,
    }[rule.op]


def _equal(a: Any, b: Any) -> bool:
    # true == 1 in Python; a boolean fact must not match a number literal (or vice versa).
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def check_template(text: str) -> None:
    """Check that an observation text's ``{fact}`` / ``{fact:format}`` placeholders are known."""
    for m in _PLACEHOLDER.finditer(text):
        fact_kind(m["fact"])
        if m["spec"]:
            try:
                format(1.5, m["spec"])
            except ValueError:
                raise RuleError(
                    f"bad format '{m['spec']}' for {{{m['fact']}}}; use a Python format spec "
                    "such as .1% or .3g"
                ) from None


def render(text: str, facts: Mapping[str, Any]) -> str:
    """The observation text with its placeholders filled from the facts ('?' when absent)."""

    def fill(m: re.Match[str]) -> str:
        value = facts.get(m["fact"])
        if value is None:
            return "?"
        try:
            return format(value, m["spec"] or "")
        except (TypeError, ValueError):
            return str(value)

    return _PLACEHOLDER.sub(fill, text)


def config_facts(config: Mapping[str, Any]) -> dict[str, Any]:
    """The baseline config as facts: ``{"model.family": "dcn_v2", "train.epochs": 3, ...}``."""
    return {
        f"{section}.{key}": value
        for section in CONFIG_SECTIONS
        for key, value in (config.get(section) or {}).items()
    }


def profile_facts(
    config: Mapping[str, Any],
    data: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """All the facts of a baseline: its config, its data profile's summary fields (a
    DataProfile's ``model_dump()`` will do; per-column lists are left out) and its training
    curve's facts (unprefixed names, e.g. ``{"improving_at_end": True}``)."""
    facts = config_facts(config)
    for key, value in (data or {}).items():
        if key in DATA_FACTS:
            facts[f"data.{key}"] = value
    for key, value in (training or {}).items():
        if key not in TRAINING_FACTS:
            raise RuleError(f"unknown training fact '{key}'; known: {', '.join(TRAINING_FACTS)}")
        facts[f"training.{key}"] = value
    return facts
