"""The research knowledge base: a built-in catalog of config changes known to matter for CTR models.

Each entry is a hypothesis template: a named, explained config delta (dotted keys into the trial
config of ranking_models), the model families it applies to, and where the idea comes from.
Entries whose delta is a no-op for the baseline, or invalid for its family, are dropped by the
planner (ranking_models.config validates every candidate).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rea_cli.errors import UsageError

ALL = ("lr", "fm", "wide_deep", "deepfm", "dcn_v2", "dlrm", "finalmlp")
DEEP = ("wide_deep", "deepfm", "dcn_v2", "dlrm", "finalmlp")


@dataclass(frozen=True)
class CatalogEntry:
    hypothesis_id: str
    title: str
    rationale: str
    delta: dict[str, Any]
    families: tuple[str, ...] = ALL
    prior: float = 0.5  # prior belief that it helps (0..1), used to rank before any history
    reference: str = ""
    tags: tuple[str, ...] = field(default=())


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        "emb32",
        "Larger embeddings (dim 32)",
        "Wider sparse features capture more user/item structure; usually the first lever on "
        "small CTR data sets before the interaction arch saturates.",
        {"model.embedding_dim": 32},
        families=ALL[1:],
        prior=0.6,
        reference="BARS benchmark tuning guides (Zhu et al. 2022)",
    ),
    CatalogEntry(
        "lr_dense_x3",
        "Dense learning rate x3",
        "Default Adam LR is often conservative for shallow MLPs over embeddings; a higher LR "
        "converges in fewer epochs at low fidelity.",
        {"train.lr_dense": 3e-3},
        prior=0.55,
        reference="Open benchmarking for CTR prediction (Zhu et al. 2021)",
    ),
    CatalogEntry(
        "lr_sparse_x3",
        "Sparse (embedding) learning rate x3",
        "Embedding rows see few updates each; a separate, higher LR for sparse parameters "
        "speeds them up without destabilising the dense arch.",
        {"train.lr_sparse": 3e-3},
        prior=0.5,
        reference="DLRM (Naumov et al. 2019): separate sparse/dense optimisers",
    ),
    CatalogEntry(
        "dropout_0.1",
        "Lighter dropout (0.1) in the MLPs",
        "Short, low-epoch training rarely overfits; heavy dropout then mostly slows learning.",
        {"model.dropout": 0.1},
        families=DEEP,
        prior=0.45,
    ),
    CatalogEntry(
        "layernorm",
        "Layer normalisation in the MLPs",
        "Normalisation stabilises training of deeper MLPs and tolerates higher learning rates.",
        {"model.norm": "layer"},
        families=DEEP,
        prior=0.45,
        reference="FinalMLP (Mao et al. 2023) uses normalised MLP streams",
    ),
    CatalogEntry(
        "cross4",
        "Four cross layers",
        "More explicit feature crosses raise the interaction order DCN-v2 can model.",
        {"model.cross_layers": 4},
        families=("dcn_v2",),
        prior=0.5,
        reference="DCN V2 (Wang et al. 2021)",
    ),
    CatalogEntry(
        "lowrank_cross",
        "Low-rank cross layers (rank 8)",
        "Low-rank mixture of cross layers keeps quality at a fraction of the cost and "
        "regularises the cross network.",
        {"model.low_rank": 8},
        families=("dcn_v2",),
        prior=0.4,
        reference="DCN V2 (Wang et al. 2021), section 5",
    ),
    CatalogEntry(
        "stacked_cross",
        "Stacked instead of parallel cross/deep structure",
        "Feeding the cross network into the deep network models crosses of crosses.",
        {"model.structure": "stacked"},
        families=("dcn_v2",),
        prior=0.4,
        reference="DCN V2 (Wang et al. 2021)",
    ),
    CatalogEntry(
        "adamw_wd",
        "AdamW with weight decay 1e-4",
        "Decoupled weight decay regularises dense weights without biasing Adam's updates.",
        {"train.optimizer": "adamw", "train.weight_decay": 1e-4},
        prior=0.4,
        reference="Loshchilov & Hutter 2019",
    ),
    CatalogEntry(
        "cosine_warmup",
        "Cosine LR schedule with warmup",
        "Warmup avoids early divergence at high LR; cosine decay sharpens the last epoch.",
        {"train.lr_schedule": "cosine", "train.warmup_steps": 20},
        prior=0.4,
    ),
    CatalogEntry(
        "wider_mlp",
        "Wider MLP (512-256)",
        "More capacity in the dense/over arch for the feature interactions the model learns.",
        {"model.hidden_dims": [512, 256]},
        families=DEEP,
        prior=0.35,
    ),
    CatalogEntry(
        "gelu",
        "GELU activation",
        "Smoother activation; small but consistent gains in recent CTR MLPs.",
        {"model.activation": "gelu"},
        families=DEEP,
        prior=0.3,
    ),
)


def entries_for(family: str, extra: list[CatalogEntry] | None = None) -> list[CatalogEntry]:
    """Entries for a family; `extra` (the workspace's own) replace built-ins of the same id."""
    own = [e for e in extra or [] if family in e.families]
    ids = {e.hypothesis_id for e in own}
    return own + [e for e in CATALOG if family in e.families and e.hypothesis_id not in ids]


class _UserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")
    title: str
    rationale: str = ""
    delta: dict[str, Any]
    families: list[str] = Field(default_factory=lambda: list(ALL))
    prior: float = Field(0.9, ge=0, le=1)  # the user asked for it: rank it high by default
    reference: str = ""


def load_workspace_catalog(path: Path) -> list[CatalogEntry]:
    """The workspace's own knowledge base (hypotheses.toml), ahead of the built-in catalog."""
    if not path.is_file():
        return []
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    entries = []
    for i, item in enumerate(raw.get("hypothesis", [])):
        try:
            e = _UserEntry.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise UsageError(f"{path}: hypothesis {i + 1}: {loc}: {err['msg']}; fix it") from None
        entries.append(
            CatalogEntry(
                e.id, e.title, e.rationale, e.delta, tuple(e.families), e.prior, e.reference
            )
        )
    return entries
