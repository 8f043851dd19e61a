"""Data specs: validation and normalisation of a trial spec's ``data`` section. Imports no torch.

Specs (``split_seed``, ``valid_fraction``, ``test_fraction`` and ``min_frequency`` are common):

    {"name": "synthetic", "n_rows": 20000, "positive_rate": 0.25, "seed": 0}
    {"name": "synthetic", "effects": ["nonmonotone_numeric", "cross", "slow_interaction"]}
    {"name": "movielens-100k"}
    {"name": "movielens-1m"}                    # python -m ranking_models.data.fetch movielens-1m
    {"name": "byo", "path": "schema.toml"}      # or .yaml: data file + columns, see docs/models.md
    {"name": "criteo", "path": "day_0.tsv"}     # label, I1..I13, C1..C26, tab-separated
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ranking_models.errors import DataError, describe_pydantic_error, join_names

__all__ = [
    "DATASETS",
    "ByoSchema",
    "DataError",
    "data_dir",
    "load_byo_schema",
    "validate_data_spec",
]

DATASETS: tuple[str, ...] = ("synthetic", "movielens-100k", "byo", "criteo", "movielens-1m")
FETCH_COMMAND = "python -m ranking_models.data.fetch movielens-100k"


def data_dir() -> Path:
    """The dataset cache root: $REA_DATA_DIR, else ~/.cache/rea/datasets."""
    env = os.environ.get("REA_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rea" / "datasets"


# Planted effects of the synthetic generator, in the order they are applied.
EFFECTS: tuple[str, ...] = ("nonmonotone_numeric", "cross", "slow_interaction")
Effect = Literal["nonmonotone_numeric", "cross", "slow_interaction"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Common(_Strict):
    split_seed: int = 0
    valid_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    min_frequency: int = Field(1, ge=1)


class SyntheticSpec(_Common):
    name: Literal["synthetic"]
    n_rows: int = Field(20000, ge=100, le=100_000_000)
    positive_rate: float = Field(0.25, gt=0.0, lt=1.0)
    seed: int = 0
    n_categorical: int = Field(8, ge=1, le=200)
    n_numerical: int = Field(4, ge=0, le=200)
    vocab_size: int = Field(1000, ge=2, le=10_000_000)
    # Planted signal the default config cannot reach (see sources.synthetic); [] = the plain data.
    effects: list[Effect] = Field(default_factory=list)

    @field_validator("effects")
    @classmethod
    def _canonical_effects(cls, value: list[Effect]) -> list[Effect]:
        # One order, no repeats: the same effects give the same data (and cache key).
        return [e for e in EFFECTS if e in value]


class MovieLensSpec(_Common):
    name: Literal["movielens-100k"]


class MovieLens1MSpec(_Common):
    name: Literal["movielens-1m"]


class ByoSpec(_Common):
    name: Literal["byo"]
    path: str


class CriteoSpec(_Common):
    name: Literal["criteo"]
    path: str
    max_rows: int | None = Field(None, ge=1)


DataSpec = Annotated[
    SyntheticSpec | MovieLensSpec | ByoSpec | CriteoSpec | MovieLens1MSpec,
    Field(discriminator="name"),
]


class _Envelope(_Strict):
    data: DataSpec


class ByoSchema(_Strict):
    """The small TOML/YAML file that describes a bring-your-own data file."""

    data: str  # the Parquet or CSV file, relative to the schema file
    format: Literal["csv", "parquet"] | None = None
    label: str
    label_threshold: float | None = None  # label = value >= threshold (e.g. ratings)
    categorical: list[str] = Field(default_factory=list)
    numerical: list[str] = Field(default_factory=list)
    log1p: list[str] = Field(default_factory=list)  # numerical columns to log1p first
    delimiter: str = Field(",", min_length=1, max_length=1)

    @model_validator(mode="after")
    def _columns(self) -> ByoSchema:
        if not self.categorical and not self.numerical:
            raise ValueError("list at least one column under 'categorical' or 'numerical'")
        both = set(self.categorical) & set(self.numerical)
        if both:
            raise ValueError(f"columns both categorical and numerical: {join_names(sorted(both))}")
        if self.label in self.categorical or self.label in self.numerical:
            raise ValueError(f"the label column '{self.label}' is also listed as a feature")
        stray = set(self.log1p) - set(self.numerical)
        if stray:
            raise ValueError(f"log1p lists non-numerical columns: {join_names(sorted(stray))}")
        return self


def _fields() -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {"_tags": list(DATASETS)}
    classes: tuple[type[BaseModel], ...] = (
        SyntheticSpec,
        MovieLensSpec,
        ByoSpec,
        CriteoSpec,
        MovieLens1MSpec,
    )
    for name, cls in zip(DATASETS, classes, strict=True):
        fields[f"data.{name}"] = list(cls.model_fields)
    return fields


def validate_data_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Validate a data spec and return it normalised (defaults filled, paths absolute).

    Raises DataError with one line naming the problem. For "byo" the schema file is read and
    checked too; for "criteo" the file must exist. The MovieLens cache is not checked here.
    """
    if not isinstance(spec, dict):
        raise DataError(f"invalid data spec: expected a mapping, got {type(spec).__name__}")
    try:
        parsed = _Envelope.model_validate({"data": spec}).data
    except ValidationError as exc:
        fields = _fields()
        name = spec.get("name")
        valid = {"data": fields.get(f"data.{name}", []), "_tags": fields["_tags"]}
        msg = describe_pydantic_error(exc, "invalid data spec", valid)
        raise DataError(msg.replace("'data.", "'").replace(" data.", " ")) from None
    out = parsed.model_dump(mode="json")
    if isinstance(parsed, ByoSpec | CriteoSpec):
        path = Path(parsed.path).expanduser().resolve()
        if not path.is_file():
            raise DataError(f"data file for '{parsed.name}' not found: {path}")
        out["path"] = str(path)
        if isinstance(parsed, ByoSpec):
            load_byo_schema(path)
    return out


def load_byo_schema(path: str | os.PathLike[str]) -> tuple[ByoSchema, Path]:
    """Read a BYO schema file; return it and the absolute path of its data file."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read BYO schema {path}: {exc}") from None
    raw: Any
    try:
        if path.suffix == ".toml":
            raw = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)
        else:
            raise DataError(f"BYO schema {path} must end in .toml, .yaml or .yml")
    except DataError:
        raise
    except Exception as exc:  # both parsers raise their own error types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot parse BYO schema {path}: {first}") from None
    if not isinstance(raw, dict):
        raise DataError(f"BYO schema {path} must be a mapping of settings")
    try:
        schema = ByoSchema.model_validate(raw)
    except ValidationError as exc:
        valid = {"": list(ByoSchema.model_fields)}
        raise DataError(describe_pydantic_error(exc, f"invalid BYO schema {path}", valid)) from None
    data_path = (path.parent / schema.data).resolve()
    if not data_path.is_file():
        raise DataError(f"BYO data file not found: {data_path} (from 'data' in {path})")
    return schema, data_path
