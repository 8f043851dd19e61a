"""Small building blocks shared by the models (shapes: B batch, F categorical fields,
D numerical features, E embedding dim)."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


class SparseArch(nn.Module):
    """All categorical fields in one embedding table (one lookup per batch).

    x_cat [B, F] int64 (per-field codes, 0 = OOV) -> [B, F, E].
    """

    def __init__(self, vocab_sizes: list[int], dim: int, init_std: float = 0.01) -> None:
        super().__init__()
        offsets = torch.tensor([0, *vocab_sizes[:-1]], dtype=torch.int64).cumsum(0)
        self.offsets: torch.Tensor
        self.register_buffer("offsets", offsets, persistent=False)
        self.table = nn.Embedding(max(sum(vocab_sizes), 1), dim)
        nn.init.normal_(self.table.weight, std=init_std)

    def forward(self, x_cat: torch.Tensor) -> torch.Tensor:
        return self.table(x_cat + self.offsets)


class NumericEmbedding(nn.Module):
    """Each numerical feature becomes a field: value x a learned vector. [B, D] -> [B, D, E]."""

    def __init__(self, n_numerical: int, dim: int, init_std: float = 0.01) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_numerical, dim) * init_std)

    def forward(self, x_num: torch.Tensor) -> torch.Tensor:
        return x_num.unsqueeze(-1) * self.weight


class LinearArch(nn.Module):
    """First-order terms: one weight per categorical value + a linear map of x_num. -> [B]."""

    def __init__(self, vocab_sizes: list[int], n_numerical: int) -> None:
        super().__init__()
        self.sparse = SparseArch(vocab_sizes, 1, init_std=0.0)
        self.dense = nn.Linear(n_numerical, 1) if n_numerical else None
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        out = self.sparse(x_cat).sum(dim=(1, 2)) + self.bias
        if self.dense is not None:
            out = out + self.dense(x_num).squeeze(-1)
        return out


class MLP(nn.Module):
    """Linear -> norm -> activation -> dropout, per hidden dim. [B, in] -> [B, hidden_dims[-1]]."""

    def __init__(
        self,
        in_dim: int,
        hidden_dims: list[int],
        dropout: float = 0.0,
        norm: str = "none",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for dim in hidden_dims:
            layers.append(nn.Linear(in_dim, dim))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(dim))
            elif norm == "layer":
                layers.append(nn.LayerNorm(dim))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_dim = dim
        self.net = nn.Sequential(*layers)
        self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FMInteraction(nn.Module):
    """Sum of pairwise dot products of field embeddings. [B, N, E] -> [B]."""

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        square_of_sum = emb.sum(dim=1).pow(2)
        sum_of_square = emb.pow(2).sum(dim=1)
        return 0.5 * (square_of_sum - sum_of_square).sum(dim=1)


class CrossNetV2(nn.Module):
    """DCN-v2 cross layers: x_{l+1} = x_0 * (W_l x_l + b_l) + x_l; W = U V^T when low_rank.

    [B, d] -> [B, d].
    """

    def __init__(self, dim: int, n_layers: int, low_rank: int | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(n_layers):
            if low_rank is None:
                self.layers.append(nn.Linear(dim, dim))
            else:
                down = nn.Linear(dim, low_rank, bias=False)
                self.layers.append(nn.Sequential(down, nn.Linear(low_rank, dim)))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class DotInteraction(nn.Module):
    """DLRM interaction: pairwise dots of N vectors (upper triangle). [B, N, E] -> [B, N(N-1)/2]."""

    def __init__(self, n_vectors: int) -> None:
        super().__init__()
        rows, cols = torch.triu_indices(n_vectors, n_vectors, offset=1)
        self.rows: torch.Tensor
        self.cols: torch.Tensor
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        gram = torch.bmm(vectors, vectors.transpose(1, 2))
        return gram[:, self.rows, self.cols]


class FeatureGate(nn.Module):
    """FinalMLP feature selection: x * 2 sigmoid(MLP(x)), a learned gate. [B, d] -> [B, d]."""

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 * torch.sigmoid(self.net(x))


class BilinearFusion(nn.Module):
    """FinalMLP multi-head bilinear fusion of two streams. [B, d1], [B, d2] -> [B]."""

    def __init__(self, dim1: int, dim2: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.h1, self.h2 = dim1 // n_heads, dim2 // n_heads
        self.w1 = nn.Linear(dim1, 1)
        self.w2 = nn.Linear(dim2, 1, bias=False)
        self.w12 = nn.Parameter(torch.empty(n_heads, self.h1, self.h2))
        nn.init.xavier_normal_(self.w12)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        a = x1.view(-1, self.n_heads, self.h1)
        b = x2.view(-1, self.n_heads, self.h2)
        bilinear = torch.einsum("bhi,hij,bhj->b", a, self.w12, b)
        return (self.w1(x1) + self.w2(x2)).squeeze(-1) + bilinear
