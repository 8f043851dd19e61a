"""Our foreach optimizers (which avoid torch.optim's slow import) must match torch.optim."""

import math

import pytest
import torch

from ranking_models import optim


def _run(make, steps: int = 5) -> list[torch.Tensor]:
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))
    opt = make(
        [
            {"params": [a], "lr": 0.01, "weight_decay": 0.1},
            {"params": [b], "lr": 0.05, "weight_decay": 0.0},
        ]
    )
    for i in range(steps):
        opt.zero_grad()
        ((a @ b).sin().sum() * (i + 1)).backward()
        opt.step()
    return [a.detach().clone(), b.detach().clone()]


@pytest.mark.parametrize(
    ("ours", "reference"),
    [
        (lambda g: optim.make("adam", g), lambda g: torch.optim.Adam(g)),
        (lambda g: optim.make("adamw", g), lambda g: torch.optim.AdamW(g)),
        (
            lambda g: optim.make("sgd", g, momentum=0.9),
            lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9),
        ),
        (lambda g: optim.make("sgd", g, momentum=0.0), lambda g: torch.optim.SGD(g, lr=0.1)),
        (lambda g: optim.make("adagrad", g), lambda g: torch.optim.Adagrad(g)),
    ],
    ids=["adam", "adamw", "sgd-momentum", "sgd", "adagrad"],
)
def test_matches_torch_optim(ours, reference) -> None:
    for mine, theirs in zip(_run(ours), _run(reference), strict=True):
        assert torch.allclose(mine, theirs, atol=1e-6, rtol=1e-5)


def test_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    opt = optim.make("adam", [{"params": [w], "lr": 0.1, "weight_decay": 0.0}])
    for _ in range(3):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    saved_w, saved = w.detach().clone(), opt.state_dict()
    opt.zero_grad()
    (w**2).sum().backward()
    opt.step()
    expected = w.detach().clone()
    w2 = torch.nn.Parameter(saved_w)
    opt2 = optim.make("adam", [{"params": [w2], "lr": 0.1, "weight_decay": 0.0}])
    opt2.load_state_dict(saved)
    (w2**2).sum().backward()
    opt2.step()
    assert torch.equal(w2.detach(), expected)


# ---------------------------------------------------------------- Adagrad variants


def _reference_adagrad(
    params: list[torch.Tensor],
    grads_per_step: list[list[torch.Tensor]],
    lr: float,
    wd: float,
    rowwise: bool,
    eps: float = 1e-10,
) -> list[torch.Tensor]:
    """The textbook rules element by element / row by row (no foreach, no broadcasting)."""
    weights = [p.detach().clone() for p in params]
    acc = [torch.zeros(w.shape[0]) if rowwise else torch.zeros_like(w) for w in weights]
    for grads in grads_per_step:
        for w, a, g in zip(weights, acc, grads, strict=True):
            g = g + wd * w
            for r in range(w.shape[0]):
                if rowwise:
                    row = g[r].reshape(-1)
                    a[r] += sum(float(x) ** 2 for x in row) / row.numel()
                    w[r] -= lr * g[r] / (math.sqrt(float(a[r])) + eps)
                else:
                    a[r] += g[r] * g[r]
                    w[r] -= lr * g[r] / (a[r].sqrt() + eps)
    return weights


@pytest.mark.parametrize("rowwise", [True, False], ids=["rowwise_adagrad", "adagrad"])
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adagrad_variants_match_a_reference(rowwise: bool, wd: float) -> None:
    torch.manual_seed(0)
    table, vector = torch.nn.Parameter(torch.randn(6, 4)), torch.nn.Parameter(torch.randn(5))
    start = [table.detach().clone(), vector.detach().clone()]
    opt = optim.make("rowwise_adagrad" if rowwise else "adagrad", [
        {"params": [table, vector], "lr": 0.1, "weight_decay": wd}
    ])  # fmt: skip
    seen: list[list[torch.Tensor]] = []
    for i in range(4):
        opt.zero_grad()
        rows = torch.tensor([0, 2, 2, 5 - i])  # some rows untouched: their gradient is zero
        ((table[rows] * (i + 1)).sin().sum() + (vector**3).sum()).backward()
        seen.append([table.grad.clone(), vector.grad.clone()])
        opt.step()
    expected = _reference_adagrad([torch.nn.Parameter(w) for w in start], seen, 0.1, wd, rowwise)
    assert torch.allclose(table.detach(), expected[0], atol=1e-6, rtol=1e-5)
    assert torch.allclose(vector.detach(), expected[1], atol=1e-6, rtol=1e-5)
    if rowwise:
        assert opt.state[0][0]["sum"].shape == (6,)  # one accumulator per row


def test_rowwise_adagrad_leaves_untouched_rows_alone() -> None:
    table = torch.nn.Parameter(torch.ones(4, 3))
    opt = optim.make("rowwise_adagrad", [{"params": [table], "lr": 0.5, "weight_decay": 0.0}])
    table[torch.tensor([1])].sum().backward()
    opt.step()
    assert torch.equal(table.detach()[[0, 2, 3]], torch.ones(3, 3))
    assert not torch.equal(table.detach()[1], torch.ones(3))


@pytest.mark.parametrize("sparse", ["rowwise_adagrad", "adagrad", "sgd"])
def test_chained_state_dict_round_trip_continues_identically(sparse: str) -> None:
    def build(w: torch.Tensor, e: torch.Tensor) -> optim.Chained:
        return optim.Chained([
            optim.make("adam", [{"params": [w], "lr": 0.1, "weight_decay": 0.0}]),
            optim.make(sparse, [{"params": [e], "lr": 0.2, "weight_decay": 0.01}], momentum=0.0),
        ])  # fmt: skip

    def step(opt: optim.Chained, w: torch.Tensor, e: torch.Tensor) -> None:
        opt.zero_grad()
        ((e[torch.tensor([0, 3])] @ w).tanh().sum()).backward()
        opt.step()

    torch.manual_seed(0)
    w, e = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(5, 3))
    opt = build(w, e)
    for _ in range(3):
        step(opt, w, e)
    saved = [w.detach().clone(), e.detach().clone()]
    state = opt.state_dict()
    step(opt, w, e)
    w2, e2 = torch.nn.Parameter(saved[0]), torch.nn.Parameter(saved[1])
    opt2 = build(w2, e2)
    opt2.load_state_dict(state)
    step(opt2, w2, e2)
    assert torch.equal(w2.detach(), w.detach()) and torch.equal(e2.detach(), e.detach())
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.2]
