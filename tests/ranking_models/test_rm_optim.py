"""Our foreach optimizers (which avoid torch.optim's slow import) must match torch.optim."""

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
