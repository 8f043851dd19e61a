"""Minimal Adam / AdamW / SGD / Adagrad / row-wise Adagrad over parameter groups.

Why not torch.optim: constructing any torch.optim optimizer imports torch._dynamo (about 1.5 s
on a small CPU box), which dominates a tiny trial. These implement the textbook update rules
(the same as torch.optim's defaults; tests compare them) and a plain state_dict for checkpoints.
``Chained`` runs one optimizer for the dense parameters and another for the embedding tables.
"""

from __future__ import annotations

import math
from typing import Any

import torch

Group = dict[str, Any]


class Optimizer:
    """Groups are dicts with "params", "lr" and "weight_decay"; ``lr`` may be changed per step."""

    def __init__(self, groups: list[Group], **defaults: Any) -> None:
        self.param_groups: list[Group] = []
        for g in groups:
            group = {**defaults, **g, "params": list(g["params"])}
            group.setdefault("base_lr", group["lr"])
            self.param_groups.append(group)
        self.steps = 0
        self.state: list[list[dict[str, torch.Tensor]]] = [
            [{} for _ in g["params"]] for g in self.param_groups
        ]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        for g, states in zip(self.param_groups, self.state, strict=True):
            live = [(p, s) for p, s in zip(g["params"], states, strict=True) if p.grad is not None]
            if live:
                self._update(
                    g, [p for p, _ in live], [p.grad for p, _ in live], [s for _, s in live]
                )

    def _update(
        self,
        g: Group,
        params: list[torch.Tensor],
        grads: Any,
        states: list[dict[str, torch.Tensor]],
    ) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups],
            "state": [
                [{k: v.clone() for k, v in s.items()} for s in states] for states in self.state
            ],
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.steps = int(sd["steps"])
        for g, saved in zip(self.param_groups, sd["groups"], strict=True):
            g.update(saved)
        for states, saved_states, g in zip(self.state, sd["state"], self.param_groups, strict=True):
            for i, saved in enumerate(saved_states):
                device = g["params"][i].device
                states[i] = {k: v.to(device) for k, v in saved.items()}


def _slot(
    states: list[dict[str, torch.Tensor]], params: list[torch.Tensor], name: str
) -> list[torch.Tensor]:
    for s, p in zip(states, params, strict=True):
        if name not in s:
            s[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return [s[name] for s in states]


class Adam(Optimizer):
    """Adam (L2 weight decay added to the gradient); decoupled=True gives AdamW."""

    def __init__(
        self,
        groups: list[Group],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        decoupled: bool = False,
    ) -> None:
        super().__init__(groups, betas=betas, eps=eps, decoupled=decoupled)

    def _update(
        self,
        g: Group,
        params: list[torch.Tensor],
        grads: Any,
        states: list[dict[str, torch.Tensor]],
    ) -> None:
        beta1, beta2 = g["betas"]
        lr, wd = g["lr"], g["weight_decay"]
        if wd and g["decoupled"]:
            torch._foreach_mul_(params, 1 - lr * wd)
        elif wd:
            grads = torch._foreach_add(grads, params, alpha=wd)
        m, v = _slot(states, params, "exp_avg"), _slot(states, params, "exp_avg_sq")
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
        bc1 = 1 - beta1**self.steps
        bc2 = 1 - beta2**self.steps
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, math.sqrt(bc2))
        torch._foreach_add_(denom, g["eps"])
        torch._foreach_addcdiv_(params, m, denom, value=-lr / bc1)


class SGD(Optimizer):
    """SGD with (heavy-ball) momentum and L2 weight decay."""

    def __init__(self, groups: list[Group], momentum: float = 0.0) -> None:
        super().__init__(groups, momentum=momentum)

    def _update(
        self,
        g: Group,
        params: list[torch.Tensor],
        grads: Any,
        states: list[dict[str, torch.Tensor]],
    ) -> None:
        if g["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=g["weight_decay"])
        if g["momentum"]:
            first = "momentum_buffer" not in states[0]
            buf = _slot(states, params, "momentum_buffer")
            if first:
                torch._foreach_copy_(buf, grads)
            else:
                torch._foreach_mul_(buf, g["momentum"])
                torch._foreach_add_(buf, grads)
            grads = buf
        torch._foreach_add_(params, grads, alpha=-g["lr"])


class Adagrad(Optimizer):
    def __init__(self, groups: list[Group], eps: float = 1e-10) -> None:
        super().__init__(groups, eps=eps)

    def _update(
        self,
        g: Group,
        params: list[torch.Tensor],
        grads: Any,
        states: list[dict[str, torch.Tensor]],
    ) -> None:
        if g["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=g["weight_decay"])
        acc = _slot(states, params, "sum")
        torch._foreach_addcmul_(acc, grads, grads, 1.0)
        std = torch._foreach_sqrt(acc)
        torch._foreach_add_(std, g["eps"])
        torch._foreach_addcdiv_(params, grads, std, value=-g["lr"])


class RowWiseAdagrad(Optimizer):
    """Adagrad with one accumulator per row (DLRM / TorchRec / FBGEMM's embedding optimizer).

    For a table [V, E]: ``acc[v] += mean_e(g[v, e]^2)``, ``w[v] -= lr * g[v] / (sqrt(acc[v]) +
    eps)``: E times less optimizer state than Adagrad. Gradients here are dense, so rows absent
    from a batch get a zero update, as with sparse gradients, unless weight decay is on (L2 is
    added to the gradient of every row, as in this module's Adagrad).
    """

    def __init__(self, groups: list[Group], eps: float = 1e-10) -> None:
        super().__init__(groups, eps=eps)

    def _update(
        self,
        g: Group,
        params: list[torch.Tensor],
        grads: Any,
        states: list[dict[str, torch.Tensor]],
    ) -> None:
        for p, grad, state in zip(params, grads, states, strict=True):
            if g["weight_decay"]:
                grad = grad.add(p, alpha=g["weight_decay"])
            rows = grad.reshape(grad.shape[0], -1) if grad.dim() > 1 else grad.unsqueeze(1)
            if "sum" not in state:
                state["sum"] = torch.zeros(rows.shape[0], dtype=p.dtype, device=p.device)
            acc = state["sum"]
            acc.add_(rows.square().mean(dim=1))
            std = acc.sqrt().add_(g["eps"])
            p.addcdiv_(grad, std.view(-1, *([1] * (p.dim() - 1))), value=-g["lr"])


class Chained:
    """Several optimizers stepped together (dense parameters and embedding tables apart).

    ``param_groups`` is the concatenation of theirs (the same dicts), so setting a group's
    ``lr`` reaches the optimizer that owns it.
    """

    def __init__(self, parts: list[Optimizer]) -> None:
        self.parts = parts
        self.param_groups: list[Group] = [g for part in parts for g in part.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none)

    def step(self) -> None:
        for part in self.parts:
            part.step()

    def state_dict(self) -> dict[str, Any]:
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        for part, saved in zip(self.parts, sd["parts"], strict=True):
            part.load_state_dict(saved)


AnyOptimizer = Optimizer | Chained


def make(name: str, groups: list[Group], momentum: float = 0.9) -> Optimizer:
    """Adam, AdamW, SGD (with momentum), Adagrad or row-wise Adagrad over the groups."""
    if name == "rowwise_adagrad":
        return RowWiseAdagrad(groups)
    if name == "adam":
        return Adam(groups)
    if name == "adamw":
        return Adam(groups, decoupled=True)
    if name == "sgd":
        return SGD(groups, momentum=momentum)
    if name == "adagrad":
        return Adagrad(groups)
    raise ValueError(f"unknown optimizer {name!r}")
