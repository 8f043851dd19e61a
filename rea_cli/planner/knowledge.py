"""rea's research knowledge base: strategies as data, instantiated against a baseline.

A strategy (one ``[[strategy]]`` entry of a TOML file, docs/knowledge.md) is a parametrised
config delta with applicability rules over the baseline's profile facts (rea_cli.planner.rules),
a prior effect, a cost multiplier, a rationale and a reference. Shipped strategies live in
``knowledge/*.toml``; a workspace adds or replaces them (same id) in ``<ws>/knowledge/*.toml``,
and its legacy ``hypotheses.toml`` entries become fixed-delta strategies.

Loading (I/O) turns every problem into one UsageError line naming the file, the entry and the
key. :func:`candidates` is pure: strategies x baseline config x facts -> the concrete,
validated hypotheses to try, and the ones dropped with their reason.
"""

from __future__ import annotations

import math
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from rea_cli.errors import UsageError
from rea_cli.paths import shipped_dir
from rea_cli.planner import rules
from rea_cli.planner.rules import Outcome, Rule, RuleError

Category = Literal[
    "feature", "training", "optimization", "capacity", "architecture", "regularization"
]
Source = Literal["shipped", "workspace", "legacy", "history"]
DropKind = Literal["family", "rule", "waiting", "noop", "invalid", "duplicate", "load"]
SPEC_KINDS = ("levels", "scale", "add", "depth", "range", "copy")
_ID = r"^[a-z0-9][a-z0-9_.-]{0,39}$"
_LEGACY_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$"
_LABEL = re.compile(r"^[A-Za-z0-9_.-]{1,24}$")

# A legacy hypotheses.toml entry has a 0..1 "prior" belief instead of an expected gain: it
# maps linearly to a mean of LEGACY_GAIN x (2 prior - 1) (the default 0.9 -> +0.8%), with a
# wide sd, since nothing is known of its size. The user asked for it: rank it early.
LEGACY_GAIN = 0.01
LEGACY_SD = 0.01


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _not_reserved(value: str) -> str:
    if value == "baseline":
        raise ValueError("'baseline' is the campaign's own baseline; give the entry another id")
    return value


_NotReserved = AfterValidator(_not_reserved)


# ----------------------------------------------------------------------------- file format


class Prior(_Strict):
    """Expected gain as a fraction of the baseline metric (positive = better) and its sd."""

    mean: float = Field(ge=-0.5, le=0.5, allow_inf_nan=False)
    sd: float = Field(gt=0.0, le=0.5, allow_inf_nan=False)


class BoostEntry(_Strict):
    rule: str
    observation: str = Field(min_length=1)


class StrategyEntry(_Strict):
    """One ``[[strategy]]`` of a knowledge file, as written."""

    id: Annotated[str, _NotReserved] = Field(pattern=_ID)
    category: Category
    name: str = Field(min_length=1)
    rationale: str = Field(min_length=1)
    reference: str = Field(min_length=1)
    families: list[str] | None = None
    when: list[str] = Field(default_factory=list)
    observation: str = ""
    boost: list[BoostEntry] = Field(default_factory=list)
    prior: Prior
    boosted: Prior | None = None
    cost: float | list[float] = 1.0
    labels: list[str] | None = None
    delta: dict[str, Any] = Field(min_length=1)


class LegacyEntry(_Strict):
    """One ``[[hypothesis]]`` of a workspace's hypotheses.toml (docs/campaigns.md)."""

    id: Annotated[str, _NotReserved] = Field(pattern=_LEGACY_ID)
    title: str
    rationale: str = ""
    delta: dict[str, Any] = Field(min_length=1)
    families: list[str] | None = None
    prior: float = Field(0.9, ge=0, le=1)
    reference: str = ""


_Bound = Annotated[float, Field(allow_inf_nan=False)]


class LevelsSpec(_Strict):
    """Absolute values, one per level."""

    levels: list[Any] = Field(min_length=1)


class ScaleSpec(_Strict):
    """Multipliers of the baseline's value (element-wise for a list of layer widths)."""

    scale: list[Annotated[float, Field(gt=0.0, allow_inf_nan=False)]] = Field(min_length=1)
    min: _Bound | None = None
    max: _Bound | None = None


class AddSpec(_Strict):
    """Amounts added to the baseline's value."""

    add: list[_Bound] = Field(min_length=1)
    min: _Bound | None = None
    max: _Bound | None = None


class DepthSpec(_Strict):
    """Layers added to (copies of the last) or removed from a list of layer widths."""

    depth: list[int] = Field(min_length=1)


class RangeSpec(_Strict):
    """A search range (absolute, or multipliers of the baseline's value when relative); the
    validation tries the ``probe`` points, by default a quarter and three quarters into it."""

    range: tuple[_Bound, _Bound]
    log: bool = False
    relative: bool = False
    probe: list[_Bound] | None = Field(None, min_length=1)
    min: _Bound | None = None
    max: _Bound | None = None


class CopySpec(_Strict):
    """The baseline's value of another key (e.g. the LR reference batch = its batch size)."""

    copy_: str = Field(alias="copy")


@dataclass(frozen=True)
class Fixed:
    value: Any


KeySpec = Fixed | LevelsSpec | ScaleSpec | AddSpec | DepthSpec | RangeSpec | CopySpec
_SPEC_MODELS: dict[str, type[_Strict]] = {
    "levels": LevelsSpec,
    "scale": ScaleSpec,
    "add": AddSpec,
    "depth": DepthSpec,
    "range": RangeSpec,
    "copy": CopySpec,
}


@dataclass(frozen=True)
class Boost:
    rule: Rule
    observation: str


@dataclass(frozen=True)
class Strategy:
    """A validated strategy, its rules parsed and its delta keys checked for its families."""

    id: str
    category: Category
    name: str
    rationale: str
    reference: str
    families: tuple[str, ...]
    when: tuple[Rule, ...]
    observation: str
    boosts: tuple[Boost, ...]
    prior: Prior
    boosted: Prior | None
    costs: tuple[float, ...]  # one per level
    labels: tuple[str, ...] | None
    delta: tuple[tuple[str, KeySpec], ...]
    n_levels: int
    source: Source
    origin: str  # the file it came from
    raw: dict[str, Any] = field(default_factory=dict, compare=False)  # the entry as written


@dataclass(frozen=True)
class Knowledge:
    """The strategies to use (workspace first), and workspace entries dropped at load."""

    strategies: tuple[Strategy, ...]
    dropped: tuple[Dropped, ...] = ()


# ----------------------------------------------------------------------------- results


class SearchSpace(_Strict):
    """One key's search space for exploitation, in absolute values of this baseline."""

    kind: Literal["float", "int", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None


class Candidate(_Strict):
    """A concrete hypothesis: one level of one strategy, against one baseline."""

    hypothesis_id: str
    strategy_id: str
    source: Source
    category: Category
    name: str
    level: str
    delta: dict[str, Any]
    title: str
    trigger: str
    boosted: bool
    prior_mean: float
    prior_sd: float
    cost: float
    rationale: str
    reference: str
    search: dict[str, SearchSpace]
    waiting: list[str] = Field(default_factory=list)  # boost rules whose facts are absent


class Dropped(_Strict):
    """A strategy (or one level of it) not proposed, and why."""

    strategy_id: str
    hypothesis_id: str | None = None
    source: Source
    kind: DropKind
    reason: str
    waiting: list[str] = Field(default_factory=list)  # rules whose facts are absent


# ----------------------------------------------------------------------------- loading


class _Problem(Exception):
    """A problem in one entry: the key it concerns and the message, fix included."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def load_knowledge(workspace: Path | None = None, shipped: Path | None = None) -> Knowledge:
    """The shipped strategies, after the workspace's own (knowledge/*.toml, then the legacy
    hypotheses.toml), which replace shipped ones of the same id."""
    folder = shipped or shipped_dir("knowledge")
    base = _load_folder(folder, "shipped")
    if not base:
        raise UsageError(f"no knowledge base found in {folder}; reinstall rea (knowledge/*.toml)")
    own: list[Strategy] = []
    dropped: list[Dropped] = []
    if workspace is not None:
        own = _load_folder(workspace / "knowledge", "workspace")
        legacy, dropped = load_legacy(workspace / "hypotheses.toml")
        _check_unique([*own, *legacy])
        own += legacy
    ids = {s.id for s in own}
    return Knowledge(tuple(own + [s for s in base if s.id not in ids]), tuple(dropped))


def _load_folder(folder: Path, source: Source) -> list[Strategy]:
    if not folder.is_dir():
        return []
    found = [s for path in sorted(folder.glob("*.toml")) for s in load_file(path, source)]
    _check_unique(found)
    return found


def _check_unique(strategies: list[Strategy]) -> None:
    seen: dict[str, Strategy] = {}
    for s in strategies:
        if s.id in seen:
            raise UsageError(
                f"knowledge {s.origin}: strategy id '{s.id}' is also defined in "
                f"{seen[s.id].origin}; rename one of them"
            )
        seen[s.id] = s


def strategy_entries(strategies: Iterable[Strategy]) -> list[dict[str, Any]]:
    """The strategies as plain JSON data (the entries as written, with their source), for a
    plan to freeze the knowledge it was made with; :func:`strategies_from_entries` reverses it."""
    return [{"source": s.source, "origin": s.origin, "entry": s.raw} for s in strategies]


def strategies_from_entries(entries: Iterable[Mapping[str, Any]]) -> list[Strategy]:
    """Strategies from :func:`strategy_entries`' data, validated again like a file."""
    out: list[Strategy] = []
    for i, item in enumerate(entries):
        raw, source, origin = item.get("entry"), item.get("source"), str(item.get("origin", "?"))
        sid = raw.get("id", "?") if isinstance(raw, dict) else "?"
        try:
            if source == "legacy":
                out.append(_legacy_strategy(LegacyEntry.model_validate(raw), origin))
            elif source == "history":
                out.append(_proposal_strategy(ProposalEntry.model_validate(raw), origin))
            elif source in ("shipped", "workspace"):
                out.append(_strategy(raw, typing.cast(Source, source), origin))
            else:
                raise _Problem("source", "must be shipped, workspace or legacy")
        except ValidationError as exc:
            p = _pydantic_problem(exc, LegacyEntry)
            raise UsageError(
                f"knowledge entry {i + 1} ({sid}) from {origin}: {p.key}: {p.message}"
            ) from None
        except _Problem as p:
            raise UsageError(
                f"knowledge entry {i + 1} ({sid}) from {origin}: {p.key}: {p.message}"
            ) from None
    return out


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} {path}: not valid TOML ({exc}); fix the syntax") from None
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc.strerror}); fix the file") from None


def load_file(path: Path, source: Source = "workspace") -> list[Strategy]:
    """The strategies of one knowledge file; UsageError (one line) on any problem."""
    raw = _read_toml(path, "knowledge")
    extra = sorted(set(raw) - {"strategy"})
    if extra:
        raise UsageError(
            f"knowledge {path}: unknown top-level key '{extra[0]}'; "
            "write each strategy as a [[strategy]] table"
        )
    items = raw.get("strategy", [])
    if not isinstance(items, list):
        raise UsageError(f"knowledge {path}: 'strategy' must be [[strategy]] tables; fix it")
    out: list[Strategy] = []
    ids: set[str] = set()
    for i, item in enumerate(items):
        sid = item.get("id", "?") if isinstance(item, dict) else "?"
        where = f"knowledge {path}: strategy {i + 1} ({sid})"
        try:
            strategy = _strategy(item, source, str(path))
            if strategy.id in ids:
                raise _Problem("id", "this id is used by an earlier entry; give each its own")
        except _Problem as p:
            raise UsageError(f"{where}: {p.key}: {p.message}") from None
        ids.add(strategy.id)
        out.append(strategy)
    return out


def _strategy(item: Any, source: Source, origin: str) -> Strategy:
    if not isinstance(item, dict):
        raise _Problem("(entry)", "must be a table of keys; fix it")
    try:
        e = StrategyEntry.model_validate(item)
    except ValidationError as exc:
        raise _pydantic_problem(exc, StrategyEntry) from None
    families = _families(e.families)
    delta = tuple((key, _key_spec(key, value)) for key, value in e.delta.items())
    n = _n_levels(delta)
    _check_delta(delta, families)
    when = tuple(_rule(f"when[{j}]", text) for j, text in enumerate(e.when))
    boosts = tuple(
        Boost(
            _rule(f"boost[{j}].rule", b.rule), _template(f"boost[{j}].observation", b.observation)
        )
        for j, b in enumerate(e.boost)
    )
    if boosts and e.boosted is None:
        raise _Problem("boosted", "boost rules need a boosted prior; add boosted = {mean, sd}")
    if e.boosted is not None and not boosts:
        raise _Problem("boosted", "a boosted prior needs [[strategy.boost]] rules; add or drop it")
    costs = _costs(e.cost, n)
    labels = _labels(e.labels, n)
    if labels is None:
        derived = [_derived_label(delta, i) for i in range(n)]
        if len(set(derived)) != n:
            raise _Problem(
                "labels",
                f"the levels get the labels {', '.join(derived)}, not all different; "
                "give labels = [...], one per level",
            )
    return Strategy(
        id=e.id,
        category=e.category,
        name=e.name,
        rationale=e.rationale,
        reference=e.reference,
        families=families,
        when=when,
        observation=_template("observation", e.observation),
        boosts=boosts,
        prior=e.prior,
        boosted=e.boosted,
        costs=costs,
        labels=labels,
        delta=delta,
        n_levels=n,
        source=source,
        origin=origin,
        raw=item,
    )


def _families(given: list[str] | None) -> tuple[str, ...]:
    from ranking_models.config import FAMILIES

    if given is None:
        return FAMILIES
    for f in given:
        if f not in FAMILIES:
            raise _Problem("families", f"unknown family '{f}'; valid: {', '.join(FAMILIES)}")
    if not given:
        raise _Problem("families", "empty; list the families it applies to, or leave it out")
    return tuple(given)


def _rule(key: str, text: str) -> Rule:
    try:
        return rules.parse_rule(text)
    except RuleError as exc:
        raise _Problem(key, str(exc)) from None


def _template(key: str, text: str) -> str:
    try:
        rules.check_template(text)
    except RuleError as exc:
        raise _Problem(key, str(exc)) from None
    return text


def _costs(cost: float | list[float], n: int) -> tuple[float, ...]:
    costs = [cost] * n if isinstance(cost, float | int) else list(cost)
    if len(costs) != n:
        raise _Problem("cost", f"give one number, or one per level ({n}); got {len(costs)}")
    if not all(math.isfinite(c) and c > 0 for c in costs):
        raise _Problem(
            "cost", "a cost multiplier must be a positive number (1.0 = a baseline trial)"
        )
    return tuple(float(c) for c in costs)


def _labels(labels: list[str] | None, n: int) -> tuple[str, ...] | None:
    if labels is None:
        return None
    if len(labels) != n:
        raise _Problem("labels", f"give one label per level ({n}); got {len(labels)}")
    for label in labels:
        if not _LABEL.match(label):
            raise _Problem("labels", f"'{label}': use 1-24 of A-Z a-z 0-9 _ . -")
    if len(set(labels)) != n:
        raise _Problem("labels", "labels must differ from each other")
    return tuple(labels)


def _key_spec(key: str, value: Any) -> KeySpec:
    where = f"delta.{key}"
    if not isinstance(value, dict):
        return Fixed(value)
    kinds = [k for k in SPEC_KINDS if k in value]
    if len(kinds) != 1:
        raise _Problem(
            where,
            f"a table here must hold exactly one of: {', '.join(SPEC_KINDS)} "
            f"(got {', '.join(value) or 'nothing'}); fix it",
        )
    model = _SPEC_MODELS[kinds[0]]
    try:
        spec = model.model_validate(value)
    except ValidationError as exc:
        raise _pydantic_problem(exc, model, where) from None
    if isinstance(spec, RangeSpec):
        _check_range(where, spec)
    if isinstance(spec, DepthSpec) and 0 in spec.depth:
        raise _Problem(where, "depth 0 changes nothing; use +n to add or -n to remove layers")
    return typing.cast(KeySpec, spec)


def _check_range(where: str, spec: RangeSpec) -> None:
    low, high = spec.range
    if not low < high:
        raise _Problem(where, f"range [{low:g}, {high:g}]: low must be below high")
    if (spec.log or spec.relative) and low <= 0:
        raise _Problem(where, "a log or relative range must be above 0")
    for p in spec.probe or []:
        if not low <= p <= high:
            raise _Problem(where, f"probe {p:g} is outside the range [{low:g}, {high:g}]")


def _n_levels(delta: tuple[tuple[str, KeySpec], ...]) -> int:
    counts = {key: _spec_levels(spec) for key, spec in delta}
    sized = {k: c for k, c in counts.items() if c is not None}
    if len(set(sized.values())) > 1:
        first = next(iter(sized))
        other = next(k for k, c in sized.items() if c != sized[first])
        raise _Problem(
            f"delta.{other}",
            f"has {sized[other]} levels but delta.{first} has {sized[first]}; "
            "parametrised keys go level by level, give them the same number",
        )
    return next(iter(sized.values()), 1)


def _spec_levels(spec: KeySpec) -> int | None:
    if isinstance(spec, LevelsSpec):
        return len(spec.levels)
    if isinstance(spec, ScaleSpec):
        return len(spec.scale)
    if isinstance(spec, AddSpec):
        return len(spec.add)
    if isinstance(spec, DepthSpec):
        return len(spec.depth)
    if isinstance(spec, RangeSpec):
        return len(spec.probe) if spec.probe else 2
    return None


# --- delta keys against the config schema of every listed family


def _check_delta(delta: tuple[tuple[str, KeySpec], ...], families: tuple[str, ...]) -> None:
    from ranking_models.config import FAMILIES

    specs = dict(delta)
    targets: dict[str, tuple[str, ...]] = {}
    if "model.family" in specs:
        fam = specs["model.family"]
        if not isinstance(fam, Fixed | LevelsSpec):
            raise _Problem("delta.model.family", "give a family name or levels = [families]")
        values = fam.levels if isinstance(fam, LevelsSpec) else [fam.value]
        for v in values:
            if v not in FAMILIES:
                raise _Problem(
                    "delta.model.family", f"'{v}' is not a family; valid: {', '.join(FAMILIES)}"
                )
        targets["model"] = tuple(values)
    for key, spec in delta:
        if key == "model.family":
            continue
        section = key.split(".", 1)[0]
        for family in targets.get(section, families):
            _check_key(key, spec, family)


def _check_key(key: str, spec: KeySpec, family: str) -> None:
    from ranking_models.config import valid_keys

    where = f"delta.{key}"
    keys = valid_keys(family)
    if key not in keys:
        section = key.split(".", 1)[0]
        near = [k for k in keys if k.startswith(f"{section}.")] or keys
        raise _Problem(
            where,
            f"not a config key of family '{family}'; list only the families that have it in "
            f"`families`, or use one of: {', '.join(near)}",
        )
    kind = _field_kind(family, key)
    if isinstance(spec, Fixed):
        _check_value(where, family, key, spec.value)
    elif isinstance(spec, LevelsSpec):
        for v in spec.levels:
            _check_value(f"{where}.levels", family, key, v)
    elif isinstance(spec, CopySpec):
        if spec.copy_ not in keys:
            raise _Problem(f"{where}.copy", f"'{spec.copy_}' is not a config key of '{family}'")
    else:
        allowed = {
            ScaleSpec: ("int", "float", "int_list"),
            AddSpec: ("int", "float"),
            DepthSpec: ("int_list",),
            RangeSpec: ("int", "float"),
        }[type(spec)]
        if kind not in allowed:
            name = type(spec).__name__.removesuffix("Spec").lower()
            raise _Problem(
                where, f"'{name}' needs a numerical key ({key} is not one); use levels = [...]"
            )


def _check_value(where: str, family: str, key: str, value: Any) -> None:
    adapter, annotation = _field_adapter(family, key)
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        msg = exc.errors(include_url=False)[0]["msg"]
        raise _Problem(where, f"{value!r} is not valid: {msg}; fix the value") from None
    if isinstance(value, str) and not _accepts_str(annotation):
        raise _Problem(where, f"{value!r} is a string; write the value without quotes")


def _accepts_str(annotation: Any) -> bool:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal:
        return True
    if args and typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_accepts_str(a) for a in args)
    return annotation is str


@cache
def _field_adapter(family: str, key: str) -> tuple[TypeAdapter[Any], Any]:
    info = _field_info(family, key)
    annotation = info.annotation
    typed: Any = Annotated[annotation, *info.metadata] if info.metadata else annotation
    return TypeAdapter(typed), annotation


def _field_info(family: str, key: str) -> Any:
    from ranking_models.config import MODEL_CLASSES, FeatureConfig, TrainConfig

    section, name = key.split(".", 1)
    model: dict[str, type[BaseModel]] = {
        "model": MODEL_CLASSES[family],
        "train": TrainConfig,
        "features": FeatureConfig,
    }
    return model[section].model_fields[name]


def _field_kind(family: str, key: str) -> str:
    """int, float, int_list or other: what relative specs (scale, add, depth) may act on."""
    annotation = _field_info(family, key).annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if typing.get_origin(item) is Annotated:
            item = typing.get_args(item)[0]
        if item is int:
            return "int_list"
    return "other"


def _pydantic_problem(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> _Problem:
    # An unknown key is usually a typo that also explains a "missing" one: report it first.
    errors = exc.errors(include_url=False)
    err = sorted(errors, key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = [str(p) for p in err["loc"]]
    key = ".".join(([prefix] if prefix else []) + loc) or prefix or "(entry)"
    if err["type"] == "extra_forbidden":
        fields = _fields_at(model, loc[:-1])
        return _Problem(key, f"unknown key; valid keys here: {', '.join(fields)}")
    if err["type"] == "missing":
        return _Problem(key, "missing; add it")
    got = err.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return _Problem(key, f"{err['msg']}{shown}; fix the value")


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    current: Any = model
    for part in loc:
        if part.isdigit() or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        info = current.model_fields.get(part)
        current = _model_in(info.annotation) if info else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# --- the legacy hypotheses.toml


def load_legacy(path: Path) -> tuple[list[Strategy], list[Dropped]]:
    """A workspace's hypotheses.toml as fixed-delta strategies; entries listing an unknown
    family are dropped with the reason (the others are checked when instantiated)."""
    from ranking_models.config import FAMILIES

    if not path.is_file():
        return [], []
    raw = _read_toml(path, "hypotheses")
    extra = sorted(set(raw) - {"hypothesis"})
    if extra:
        raise UsageError(
            f"{path}: unknown top-level key '{extra[0]}'; write each hypothesis as a "
            "[[hypothesis]] table"
        )
    items = raw.get("hypothesis", [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise UsageError(f"{path}: 'hypothesis' must be [[hypothesis]] tables; fix it")
    out: list[Strategy] = []
    dropped: list[Dropped] = []
    for i, item in enumerate(items):
        try:
            e = LegacyEntry.model_validate(item)
        except ValidationError as exc:
            p = _pydantic_problem(exc, LegacyEntry)
            hid = item.get("id", "?") if isinstance(item, dict) else "?"
            raise UsageError(f"{path}: hypothesis {i + 1} ({hid}): {p.key}: {p.message}") from None
        unknown = [f for f in e.families or [] if f not in FAMILIES]
        if unknown:
            reason = (
                f"{path}: unknown family '{unknown[0]}' in families; valid: {', '.join(FAMILIES)}"
            )
            dropped.append(Dropped(strategy_id=e.id, source="legacy", kind="load", reason=reason))
            continue
        out.append(_legacy_strategy(e, str(path)))
    return out, dropped


def _legacy_strategy(e: LegacyEntry, origin: str) -> Strategy:
    from ranking_models.config import FAMILIES

    return Strategy(
        id=e.id,
        category=_legacy_category(e.delta),
        name=e.title,
        rationale=e.rationale,
        reference=e.reference,
        families=tuple(e.families) if e.families is not None else FAMILIES,
        when=(),
        observation="",
        boosts=(),
        prior=Prior(mean=LEGACY_GAIN * (2 * e.prior - 1), sd=LEGACY_SD),
        boosted=None,
        costs=(1.0,),
        labels=None,
        delta=tuple((k, Fixed(v)) for k, v in e.delta.items()),
        n_levels=1,
        source="legacy",
        origin=origin,
        raw=e.model_dump(exclude_unset=True),
    )


class ProposalEntry(_Strict):
    """An earlier campaign's confirmed proposal, tried again as one hypothesis (see
    rea_cli/app/planning.py): what it changed and what it gained when confirmed."""

    id: str = Field(pattern=_ID)
    name: str = Field(min_length=1)
    rationale: str = Field(min_length=1)
    reference: str = Field(min_length=1)
    family: str
    observation: str = Field(min_length=1)
    prior: Prior
    cost: float = Field(1.0, gt=0.0, allow_inf_nan=False)
    delta: dict[str, Any] = Field(min_length=1)


def _proposal_strategy(e: ProposalEntry, origin: str) -> Strategy:
    return Strategy(
        id=e.id,
        category=_legacy_category(e.delta),
        name=e.name,
        rationale=e.rationale,
        reference=e.reference,
        families=(e.family,),
        when=(),
        observation=e.observation,
        boosts=(),
        prior=e.prior,
        boosted=None,
        costs=(e.cost,),
        labels=None,
        delta=tuple((k, Fixed(v)) for k, v in e.delta.items()),
        n_levels=1,
        source="history",
        origin=origin,
        raw=e.model_dump(mode="json"),
    )


def proposal_strategy(entry: Mapping[str, Any], origin: str) -> Strategy:
    """An earlier proposal (ProposalEntry's fields) as a strategy of one level."""
    return _proposal_strategy(ProposalEntry.model_validate(entry), origin)


def _legacy_category(delta: Mapping[str, Any]) -> Category:
    first = next(iter(delta)).split(".", 1)[0]
    category: dict[str, Category] = {"features": "feature", "train": "optimization"}
    return category.get(first, "capacity")


# ----------------------------------------------------------------------------- instantiation


class _Skip(Exception):
    """A level that cannot be built for this baseline (the reason says why)."""


def candidates(
    strategies: Iterable[Strategy], baseline: dict[str, Any], facts: Mapping[str, Any]
) -> tuple[list[Candidate], list[Dropped]]:
    """Every applicable strategy's levels as concrete hypotheses against this baseline.

    ``facts`` are the profile facts (rea_cli.planner.rules.profile_facts); the baseline
    config's own facts are added when missing. A strategy whose ``when`` rules do not all hold
    is dropped (kind "waiting" when only rules on absent facts failed); a level that is
    invalid, leaves the config unchanged or repeats an earlier candidate is dropped too.
    """
    from ranking_models.config import ConfigError, validate_config

    try:  # every key present, in the JSON form deltas are compared with
        baseline = validate_config(baseline).model_dump(mode="json")
    except ConfigError as exc:
        raise UsageError(f"the baseline config is invalid: {exc}") from None
    family = baseline["model"]["family"]
    facts = {**rules.config_facts(baseline), **facts}
    out: list[Candidate] = []
    dropped: list[Dropped] = []
    seen: dict[str, str] = {}  # canonical delta -> hypothesis id
    for s in strategies:
        drop = _not_applicable(s, family, facts)
        if drop is not None:
            dropped.append(drop)
            continue
        for i in range(s.n_levels):
            made = _level(s, i, baseline, facts)
            if isinstance(made, Dropped):
                dropped.append(made)
                continue
            key = repr(sorted(made.delta.items()))
            if key in seen:
                dropped.append(
                    _drop(s, made.hypothesis_id, "duplicate", f"same change as {seen[key]}")
                )
                continue
            seen[key] = made.hypothesis_id
            out.append(made)
    return out, dropped


def _drop(
    s: Strategy, hid: str | None, kind: DropKind, reason: str, waiting: list[str] | None = None
) -> Dropped:
    return Dropped(
        strategy_id=s.id,
        hypothesis_id=hid,
        source=s.source,
        kind=kind,
        reason=reason,
        waiting=waiting or [],
    )


def _not_applicable(s: Strategy, family: str, facts: Mapping[str, Any]) -> Dropped | None:
    if family not in s.families:
        return _drop(s, None, "family", f"not for family '{family}' (for: {', '.join(s.families)})")
    outcomes = [(r, rules.evaluate(r, facts)) for r in s.when]
    waiting = [r.text for r, o in outcomes if o is Outcome.ABSENT]
    false = [r for r, o in outcomes if o is Outcome.FALSE]
    if false:
        shown = ", ".join(f"{r.text} (it is {_fmt(facts.get(r.fact))})" for r in false)
        return _drop(s, None, "rule", f"does not apply: {shown}", waiting)
    if waiting:
        return _drop(
            s, None, "waiting", f"waits for {', '.join(waiting)} (fact not known yet)", waiting
        )
    return None


def _level(
    s: Strategy, i: int, baseline: dict[str, Any], facts: Mapping[str, Any]
) -> Candidate | Dropped:
    from ranking_models.config import ConfigError, apply_delta

    label = _level_label(s, i)
    hid = f"{s.id}@{label}" if label else s.id
    specs = dict(s.delta)
    try:
        ref = baseline
        if "model.family" in specs:
            family = _resolve(specs["model.family"], None, i, "other")
            if family != baseline["model"]["family"]:
                ref = apply_delta(baseline, {"model.family": family})
        full = {key: _resolve_key(key, spec, ref, i) for key, spec in s.delta}
        apply_delta(baseline, full)  # validates the whole changed config
    except _Skip as exc:
        return _drop(s, hid, "invalid", str(exc))
    except ConfigError as exc:
        return _drop(s, hid, "invalid", f"invalid for this baseline: {exc}")
    delta = {
        k: v
        for k, v in full.items()
        if (k == "model.family" and v != baseline["model"]["family"])
        or (k != "model.family" and _get(ref, k) != v)
    }
    if not delta:
        shown = ", ".join(f"{k} = {_fmt(v)}" for k, v in full.items())
        return _drop(s, hid, "noop", f"no change: the baseline already has {shown}")
    outcomes = [(b, rules.evaluate(b.rule, facts)) for b in s.boosts]
    boosts = [b for b, o in outcomes if o is Outcome.TRUE]
    prior = s.boosted if boosts and s.boosted is not None else s.prior
    return Candidate(
        hypothesis_id=hid,
        strategy_id=s.id,
        source=s.source,
        category=s.category,
        name=s.name,
        level=label,
        delta=delta,
        title=_title(delta, baseline, ref),
        trigger=_trigger(s, boosts, facts),
        boosted=bool(boosts),
        prior_mean=prior.mean,
        prior_sd=prior.sd,
        cost=s.costs[i],
        rationale=s.rationale,
        reference=s.reference,
        search=_search(s, delta, baseline, ref),
        waiting=[b.rule.text for b, o in outcomes if o is Outcome.ABSENT],
    )


def _get(config: Mapping[str, Any], key: str) -> Any:
    section, name = key.split(".", 1)
    return (config.get(section) or {}).get(name)


def _resolve_key(key: str, spec: KeySpec, ref: dict[str, Any], i: int) -> Any:
    if isinstance(spec, CopySpec):
        return _get(ref, spec.copy_)
    if isinstance(spec, Fixed | LevelsSpec):
        return _resolve(spec, None, i, "other")
    base = _get(ref, key)
    if _relative(spec) and base is None:
        raise _Skip(f"the baseline has no value of {key} to change relatively (it is none)")
    return _resolve(spec, base, i, _field_kind(ref["model"]["family"], key))


def _relative(spec: KeySpec) -> bool:
    """Whether the spec's values derive from the baseline's value of the key."""
    if isinstance(spec, RangeSpec):
        return spec.relative
    return isinstance(spec, ScaleSpec | AddSpec | DepthSpec)


def _resolve(spec: KeySpec, base: Any, i: int, kind: str) -> Any:
    """The value of one key at level i, given the baseline's value of that key."""
    if isinstance(spec, Fixed):
        return spec.value
    if isinstance(spec, LevelsSpec):
        return spec.levels[i]
    if isinstance(spec, DepthSpec):
        return _deepen(base, spec.depth[i])
    if isinstance(spec, ScaleSpec):
        if kind == "int_list":
            return [max(1, round(w * spec.scale[i])) for w in base]
        return _number(base * spec.scale[i], kind, spec.min, spec.max)
    if isinstance(spec, AddSpec):
        return _number(base + spec.add[i], kind, spec.min, spec.max)
    if isinstance(spec, RangeSpec):
        point = _probe(spec)[i]
        return _number(base * point if spec.relative else point, kind, spec.min, spec.max)
    raise TypeError(f"unresolvable spec {spec!r}")


def _deepen(widths: list[int], layers: int) -> list[int]:
    if layers > 0:
        return [*widths, *[widths[-1]] * layers]
    return widths[: max(1, len(widths) + layers)]


def _clamp(value: float, low: float | None, high: float | None) -> float:
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    return value


def _number(value: float, kind: str, low: float | None, high: float | None) -> int | float:
    value = _clamp(value, low, high)
    if kind == "int":
        return round(value)
    return _sig(value, 3)


def _sig(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}")


def _probe(spec: RangeSpec) -> list[float]:
    if spec.probe:
        return list(spec.probe)
    low, high = spec.range
    if spec.log:
        return [_sig(low * (high / low) ** q, 2) for q in (0.25, 0.75)]
    return [_sig(low + (high - low) * q, 2) for q in (0.25, 0.75)]


# --- labels, titles, triggers, search spaces


def _level_label(s: Strategy, i: int) -> str:
    return s.labels[i] if s.labels is not None else _derived_label(s.delta, i)


def _derived_label(delta: tuple[tuple[str, KeySpec], ...], i: int) -> str:
    parts = [_spec_label(spec, i) for _, spec in delta]
    label = "_".join(dict.fromkeys(p for p in parts if p))  # x0.3 for two keys both x0.3
    return re.sub(r"[^A-Za-z0-9_.-]", "", label)[:24]


def _spec_label(spec: KeySpec, i: int) -> str:
    if isinstance(spec, LevelsSpec):
        v = spec.levels[i]
        return "-".join(_fmt(x) for x in v) if isinstance(v, list) else _fmt(v)
    if isinstance(spec, ScaleSpec):
        return f"x{spec.scale[i]:g}"
    if isinstance(spec, AddSpec):
        a = spec.add[i]
        return f"plus{a:g}" if a >= 0 else f"minus{-a:g}"
    if isinstance(spec, DepthSpec):
        d = spec.depth[i]
        return f"deeper{d}" if d > 0 else f"shallower{-d}"
    if isinstance(spec, RangeSpec):
        p = _probe(spec)[i]
        return f"x{p:g}" if spec.relative else f"{p:g}"
    return ""


def _fmt(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _title(delta: Mapping[str, Any], baseline: dict[str, Any], ref: dict[str, Any]) -> str:
    """The real change, from the baseline's values: 'lr_sparse 0.02 → 0.003 (x0.15)'."""
    parts: list[str] = []
    suffix: list[str] = []
    for key, new in delta.items():
        name = key.split(".", 1)[1]
        if key == "model.family":
            parts.insert(
                0,
                f"family {baseline['model']['family']} → {new} (its default "
                "architecture; train and feature settings kept)",
            )
            continue
        old = _get(ref, key)
        if key == "train.early_stopping_patience" and old is None:
            suffix.append(f"with early stopping (patience {new})")
            continue
        ratio = ""
        if _is_num(old) and _is_num(new) and old != 0 and new != old:
            ratio = f" (x{new / old:.2g})"
        parts.append(f"{name} {_fmt(old)} → {_fmt(new)}{ratio}")
    return " ".join([", ".join(parts), *suffix]).strip()


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _trigger(s: Strategy, boosts: list[Boost], facts: Mapping[str, Any]) -> str:
    texts = [rules.render(s.observation, facts)] if s.observation else []
    texts += [rules.render(b.observation, facts) for b in boosts]
    return "; ".join(texts) or "research prior"


def _search(
    s: Strategy, delta: Mapping[str, Any], baseline: dict[str, Any], ref: dict[str, Any]
) -> dict[str, SearchSpace]:
    """Search spaces of the candidate's parametrised keys (fixed ones are not searched)."""
    out: dict[str, SearchSpace] = {}
    family = ref["model"]["family"]
    for key, spec in s.delta:
        if key not in delta or isinstance(spec, Fixed | CopySpec):
            continue
        source = baseline if key == "model.family" else ref
        base = _get(source, key)
        kind = "other" if key == "model.family" else _field_kind(family, key)
        space = _space(spec, base, kind)
        if space is not None:
            out[key] = space
    return out


def _space(spec: KeySpec, base: Any, kind: str) -> SearchSpace | None:
    if isinstance(spec, LevelsSpec | DepthSpec) or kind == "int_list":
        n = _spec_levels(spec) or 1
        values = [base]  # none included: e.g. low_rank none is full rank, a real choice
        for i in range(n):
            v = _resolve(spec, base, i, kind)
            if v not in values:
                values.append(v)
        return SearchSpace(kind="choice", choices=values) if len(values) > 1 else None
    if isinstance(spec, RangeSpec):
        ends = [base * x if spec.relative else x for x in spec.range]
        log = spec.log
        clamp = (spec.min, spec.max)
    elif isinstance(spec, ScaleSpec):
        ends = [base * x for x in (*spec.scale, 1.0)]
        log, clamp = True, (spec.min, spec.max)
    elif isinstance(spec, AddSpec):
        ends = [base + x for x in (*spec.add, 0.0)]
        log, clamp = False, (spec.min, spec.max)
    else:
        return None
    low, high = (_clamp(v, *clamp) for v in (min(ends), max(ends)))
    if kind == "int":
        low, high = math.floor(low), math.ceil(high)
    else:
        low, high = _sig(low, 3), _sig(high, 3)
    if not low < high or (log and low <= 0):
        return None
    return SearchSpace(kind="int" if kind == "int" else "float", low=low, high=high, log=log)
