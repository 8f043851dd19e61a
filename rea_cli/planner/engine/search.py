"""The exploitation search space, centred on the incumbent, and the port to the search library.

The space is the incumbent's own hyperparameters (learning rates on a log scale around their
values, embedding size, width, dropout, weight decay, batch size, training length, and the
family's structure knobs) plus the search ranges of the knowledge-base hypotheses that passed
validation (e.g. the number of quantile buckets). Pure; the port is implemented with Optuna in
the application layer (rea_cli/app/search.py), its study stored in the campaign folder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Kind = Literal["float", "int", "choice"]


@dataclass(frozen=True)
class Knob:
    key: str  # a dotted config key
    kind: Kind
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return _encode(value) in [_encode(c) for c in self.choices]
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        assert self.low is not None and self.high is not None
        return self.low <= value <= self.high


@dataclass(frozen=True)
class SearchPoint:
    """A finished point of the search: a number the study knows, or a warm-start point."""

    params: dict[str, Any]  # knob key -> value (choices encoded as JSON text)
    value: float | None  # oriented (larger is better); None when it failed
    state: Literal["complete", "pruned", "fail"]
    intermediate: dict[int, float]  # epoch -> oriented value
    number: int | None = None


def study_id(space: Sequence[Knob]) -> str:
    """A study per search space: points of one space are numbered, told and reused together."""
    import hashlib

    text = json.dumps([k.__dict__ for k in space], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


class SearchPort(Protocol):
    """Ask-and-tell over a study that outlives the process (see rea_cli/app/search.py)."""

    def ask(
        self,
        study: str,
        space: Sequence[Knob],
        n: int,
        finished: Sequence[SearchPoint],
        warm: Sequence[SearchPoint],
        in_flight: set[int],
    ) -> list[tuple[int, dict[str, Any]]]:
        """n points (study number, params): first those asked earlier and never recorded in
        the campaign (a crash between ask and record), then new ones."""
        ...


def _encode(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def decode(knob: Knob, value: Any) -> Any:
    return json.loads(value) if knob.kind == "choice" else value


def _get(config: Mapping[str, Any], key: str) -> Any:
    section, name = key.split(".", 1)
    return (config.get(section) or {}).get(name)


def space(incumbent: Mapping[str, Any], ranges: Mapping[str, Mapping[str, Any]]) -> list[Knob]:
    """The knobs around `incumbent` (a full trial config), plus the knowledge base's ranges."""
    model, train = incumbent["model"], incumbent["train"]
    knobs: dict[str, Knob] = {}

    def log_range(key: str, value: float, factor: float) -> None:
        knobs[key] = Knob(key, "float", value / factor, value * factor, log=True)

    log_range("train.lr_dense", float(train["lr_dense"]), 4.0)
    log_range("train.lr_sparse", float(train["lr_sparse"]), 4.0)
    wd = float(train.get("weight_decay") or 0.0)
    knobs["train.weight_decay"] = Knob(
        "train.weight_decay", "float", 1e-8, max(1e-3, wd * 10), log=True
    )
    epochs = int(train["epochs"])
    knobs["train.epochs"] = Knob("train.epochs", "int", max(1, epochs // 2), max(2, epochs * 2))
    batch = int(train["batch_size"])
    knobs["train.batch_size"] = Knob(
        "train.batch_size", "choice", choices=tuple(sorted({max(32, batch // 2), batch, batch * 2}))
    )
    if "embedding_dim" in model:
        dim = int(model["embedding_dim"])
        dims = sorted({max(4, dim // 2), dim, min(256, dim * 2)})
        knobs["model.embedding_dim"] = Knob("model.embedding_dim", "choice", choices=tuple(dims))
    if "dropout" in model:
        knobs["model.dropout"] = Knob("model.dropout", "float", 0.0, 0.5)
    if model.get("hidden_dims"):
        dims = list(model["hidden_dims"])
        shapes = [dims, [d * 2 for d in dims], [max(8, d // 2) for d in dims], [*dims, dims[-1]]]
        if len(dims) > 1:
            shapes.append(dims[:-1])
        knobs["model.hidden_dims"] = Knob(
            "model.hidden_dims", "choice", choices=tuple(_unique(shapes))
        )
    if "cross_layers" in model:
        layers = int(model["cross_layers"])
        knobs["model.cross_layers"] = Knob("model.cross_layers", "int", 1, max(4, layers + 2))
    for key, r in ranges.items():
        if key in knobs or key == "model.family":
            continue
        kind = r.get("kind")
        if kind == "choice" and r.get("choices"):
            knobs[key] = Knob(key, "choice", choices=tuple(r["choices"]))
        elif kind in ("float", "int") and r.get("low") is not None and r.get("high") is not None:
            low, high = float(r["low"]), float(r["high"])
            if high > low:
                knobs[key] = Knob(key, kind, low, high, log=bool(r.get("log")))
    for key, knob in list(knobs.items()):
        if knob.kind == "choice" and len(knob.choices) < 2:
            del knobs[key]
    return [knobs[k] for k in sorted(knobs)]


def _unique(values: Sequence[Any]) -> list[Any]:
    seen, out = set(), []
    for v in values:
        code = _encode(v)
        if code not in seen:
            seen.add(code)
            out.append(v)
    return out


def params_of(config: Mapping[str, Any], knobs: Sequence[Knob]) -> dict[str, Any] | None:
    """A config as a point of the space (None when any knob's value lies outside it)."""
    out: dict[str, Any] = {}
    for knob in knobs:
        value = _get(config, knob.key)
        if not knob.contains(value):
            return None
        out[knob.key] = _encode(value) if knob.kind == "choice" else value
    return out


def delta_of(params: Mapping[str, Any], knobs: Sequence[Knob]) -> dict[str, Any]:
    """The config delta of a point (choices decoded, ints as ints)."""
    out: dict[str, Any] = {}
    for knob in knobs:
        if knob.key not in params:
            continue
        value = decode(knob, params[knob.key])
        if knob.kind == "int":
            value = round(value)
        elif knob.kind == "float":
            value = float(value)
        out[knob.key] = value
    return out


def median_thresholds(
    curves: Sequence[Sequence[float | None]], min_curves: int = 3, warmup: int = 1
) -> dict[int, float]:
    """Per epoch, the median of the oriented best-so-far values of the finished curves that
    reached it (at least `min_curves` of them), from epoch `warmup` on: a trial below it is
    stopped (Optuna's median rule, applied by the trial itself while it trains)."""
    out: dict[int, float] = {}
    longest = max((len(c) for c in curves), default=0)
    for epoch in range(warmup, longest):
        values = []
        for c in curves:
            seen = [v for v in c[: epoch + 1] if v is not None and math.isfinite(v)]
            if len(c) > epoch and seen:
                values.append(max(seen))
        if len(values) >= min_curves:
            values.sort()
            mid = len(values) // 2
            out[epoch] = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
    return out
