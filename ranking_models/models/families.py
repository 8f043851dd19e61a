"""The seven model families, composed torchrec-style from sparse / dense / interaction / over
arches. Every model maps (x_cat [B, F] int64, x_num [B, D] float32) -> logits [B]."""

from __future__ import annotations

import math

import torch
from torch import nn

from ranking_models import config as cfg
from ranking_models.models.layers import (
    MLP,
    BilinearFusion,
    CrossNetV2,
    DotInteraction,
    FeatureGate,
    FMInteraction,
    LinearArch,
    NumericEmbedding,
    SparseArch,
)


class RankingModel(nn.Module):
    """Base: forward = logits(x_cat, x_num) + prior, a fixed logit of the background CTR.

    Starting from the base rate keeps the first steps from pushing every embedding toward it
    (with Adam and a small learning rate that phase can even invert the ranking).
    """

    def __init__(self) -> None:
        super().__init__()
        self.prior: torch.Tensor
        self.register_buffer("prior", torch.zeros(()))

    def set_prior(self, ctr: float) -> None:
        ctr = min(max(ctr, 1e-6), 1 - 1e-6)
        self.prior.fill_(math.log(ctr / (1 - ctr)))

    def forward(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        return self.logits(x_cat, x_num) + self.prior

    def logits(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sparse_parameters(self) -> list[torch.Tensor]:
        return [m.table.weight for m in self.modules() if isinstance(m, SparseArch)]

    def dense_parameters(self) -> list[torch.Tensor]:
        sparse = {id(p) for p in self.sparse_parameters()}
        return [p for p in self.parameters() if id(p) not in sparse]


class _FieldEmbeddings(nn.Module):
    """Categorical + numerical features as N = F + D field vectors. -> [B, N, E]."""

    def __init__(self, vocab_sizes: list[int], n_numerical: int, dim: int) -> None:
        super().__init__()
        self.sparse = SparseArch(vocab_sizes, dim)
        self.numeric = NumericEmbedding(n_numerical, dim) if n_numerical else None
        self.n_fields = len(vocab_sizes) + n_numerical

    def forward(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        emb = self.sparse(x_cat)
        if self.numeric is not None:
            emb = torch.cat([emb, self.numeric(x_num)], dim=1)
        return emb


def _over(in_dim: int) -> nn.Linear:
    return nn.Linear(in_dim, 1)


def _mlp(m: cfg._DeepModel, in_dim: int) -> MLP:
    return MLP(in_dim, list(m.hidden_dims), m.dropout, m.norm, m.activation)


class LogisticRegression(RankingModel):
    def __init__(self, m: cfg.LRModel, vocab_sizes: list[int], n_numerical: int) -> None:
        super().__init__()
        self.linear = LinearArch(vocab_sizes, n_numerical)

    def logits(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        return self.linear(x_cat, x_num)


class FM(RankingModel):
    def __init__(self, m: cfg.FMModel, vocab_sizes: list[int], n_numerical: int) -> None:
        super().__init__()
        self.linear = LinearArch(vocab_sizes, n_numerical)
        self.fields = _FieldEmbeddings(vocab_sizes, n_numerical, m.embedding_dim)
        self.interaction = FMInteraction()

    def logits(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        return self.linear(x_cat, x_num) + self.interaction(self.fields(x_cat, x_num))


class WideDeep(RankingModel):
    def __init__(self, m: cfg.WideDeepModel, vocab_sizes: list[int], n_numerical: int) -> None:
        super().__init__()
        self.wide = LinearArch(vocab_sizes, n_numerical)
        self.fields = _FieldEmbeddings(vocab_sizes, n_numerical, m.embedding_dim)
        self.deep = _mlp(m, self.fields.n_fields * m.embedding_dim)
        self.over = _over(self.deep.out_dim)

    def logits(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        flat = self.fields(x_cat, x_num).flatten(1)
        return self.wide(x_cat, x_num) + self.over(self.deep(flat)).squeeze(-1)


class DeepFM(RankingModel):
    def __init__(self, m: cfg.DeepFMModel, vocab_sizes: list[int], n_numerical: int) -> None:
        super().__init__()
        self.linear = LinearArch(vocab_sizes, n_numerical)
        self.fields = _FieldEmbeddings(vocab_sizes, n_numerical, m.embedding_dim)
        self.fm = FMInteraction()
        self.deep = _mlp(m, self.fields.n_fields * m.embedding_dim)
        self.over = _over(self.deep.out_dim)

    def logits(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        emb = self.fields(x_cat, x_num)
        deep = self.over(self.deep(emb.flatten(1))).squeeze(-1)
        return self.linear(x_cat, x_num) + self.fm(emb) + deep


class DCNv2(RankingModel):
    """x0 = [flattened categorical embeddings, x_num]; cross and MLP stacked or in parallel."""

    def __init__(self, m: cfg.DCNv2Model, vocab_sizes: list[int], n_numerical: int) -> None:
        super().__init__()
        self.sparse = SparseArch(vocab_sizes, m.embedding_dim)
        in_dim = len(vocab_sizes) * m.embedding_dim + n_numerical
        self.cross = CrossNetV2(in_dim, m.cross_layers, m.low_rank)
        self.structure = m.structure
        self.deep = _mlp(m, in_dim)
        over_in = in_dim + self.deep.out_dim if m.structure == "parallel" else self.deep.out_dim
        self.over = _over(over_in)

    def logits(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        x0 = torch.cat([self.sparse(x_cat).flatten(1), x_num], dim=1)
        if self.structure == "stacked":
            out = self.deep(self.cross(x0))
        else:
            out = torch.cat([self.cross(x0), self.deep(x0)], dim=1)
        return self.over(out).squeeze(-1)


class DLRM(RankingModel):
    """Bottom MLP (x_num -> E), dot interaction with the F embeddings, top MLP (hidden_dims)."""

    def __init__(self, m: cfg.DLRMModel, vocab_sizes: list[int], n_numerical: int) -> None:
        super().__init__()
        dim = m.embedding_dim
        self.sparse = SparseArch(vocab_sizes, dim)
        self.bottom = (
            nn.Sequential(
                MLP(n_numerical, list(m.bottom_dims), 0.0, m.norm, m.activation),
                nn.Linear(m.bottom_dims[-1] if m.bottom_dims else n_numerical, dim),
            )
            if n_numerical
            else None
        )
        n_vectors = len(vocab_sizes) + (1 if n_numerical else 0)
        self.interaction = DotInteraction(n_vectors)
        top_in = n_vectors * (n_vectors - 1) // 2 + (dim if n_numerical else 0)
        self.top = _mlp(m, top_in)
        self.over = _over(self.top.out_dim)

    def logits(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        emb = self.sparse(x_cat)
        parts = []
        if self.bottom is not None:
            dense = self.bottom(x_num)
            emb = torch.cat([dense.unsqueeze(1), emb], dim=1)
            parts.append(dense)
        parts.append(self.interaction(emb))
        return self.over(self.top(torch.cat(parts, dim=1))).squeeze(-1)


class FinalMLP(RankingModel):
    """Two MLP streams over the field embeddings, each behind a feature gate, fused bilinearly."""

    def __init__(self, m: cfg.FinalMLPModel, vocab_sizes: list[int], n_numerical: int) -> None:
        super().__init__()
        self.fields = _FieldEmbeddings(vocab_sizes, n_numerical, m.embedding_dim)
        in_dim = self.fields.n_fields * m.embedding_dim
        self.gate1 = FeatureGate(in_dim) if m.feature_selection else nn.Identity()
        self.gate2 = FeatureGate(in_dim) if m.feature_selection else nn.Identity()
        self.stream1 = _mlp(m, in_dim)
        self.stream2 = MLP(in_dim, list(m.hidden_dims_2), m.dropout, m.norm, m.activation)
        self.fusion = BilinearFusion(self.stream1.out_dim, self.stream2.out_dim, m.n_heads)

    def logits(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        flat = self.fields(x_cat, x_num).flatten(1)
        return self.fusion(self.stream1(self.gate1(flat)), self.stream2(self.gate2(flat)))


MODELS: dict[str, type[RankingModel]] = {
    "lr": LogisticRegression,
    "fm": FM,
    "wide_deep": WideDeep,
    "deepfm": DeepFM,
    "dcn_v2": DCNv2,
    "dlrm": DLRM,
    "finalmlp": FinalMLP,
}
