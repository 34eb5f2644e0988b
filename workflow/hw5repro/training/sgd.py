"""The training runs' optimiser: ``torch.optim.SGD``'s update and state, without its start-up cost
(``torch.optim.Optimizer`` imports the ``torch._dynamo`` compiler stack on first use).

The update is torch's functional ``torch.optim.sgd.sgd`` with the arguments ``torch.optim.SGD.step``
passes (the same values bit for bit); ``state``, ``param_groups`` and the state dict have its
layout, so a checkpoint of either loads into the other.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch.optim.sgd import sgd


class SGD:
    """SGD as ``torch.optim.SGD(params, lr, momentum, weight_decay=weight_decay)`` computes it."""

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        *,
        foreach: bool | None = None,
    ):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"SGD needs lr, momentum and weight_decay >= 0 (lr={lr}, momentum={momentum}, "
                f"weight_decay={weight_decay})"
            )
        self.params = list(params)
        # torch.optim.SGD's keys, in its order (its state dict carries them)
        self.param_groups = [
            {
                "lr": lr,
                "momentum": momentum,
                "dampening": 0,
                "weight_decay": weight_decay,
                "nesterov": False,
                "maximize": False,
                "foreach": foreach,
                "differentiable": False,
                "fused": None,
                "params": self.params,
            }
        ]
        self.state: defaultdict[torch.Tensor, dict] = defaultdict(dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every gradient (``set_to_none``, the only form kept)."""
        if not set_to_none:
            raise ValueError("SGD.zero_grad only sets gradients to None")
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (``torch.optim.SGD.step``)."""
        group = self.param_groups[0]
        params = [p for p in self.params if p.grad is not None]
        grads = [p.grad for p in params]
        momentum = group["momentum"]
        # as torch.optim.SGD: buffers only with momentum (None before the first step)
        buffers = [self.state[p].get("momentum_buffer") for p in params] if momentum else []
        sgd(
            params,
            grads,
            buffers,
            has_sparse_grad=any(g.is_sparse for g in grads),
            foreach=group["foreach"],
            weight_decay=group["weight_decay"],
            momentum=momentum,
            lr=group["lr"],
            dampening=group["dampening"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
        )
        if momentum:
            for p, buffer in zip(params, buffers, strict=True):
                self.state[p]["momentum_buffer"] = buffer

    def state_dict(self) -> dict:
        """``torch.optim.SGD.state_dict()``'s layout: state keyed by the parameter's index."""
        index = {p: i for i, p in enumerate(self.params)}
        hyper = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {
            "state": {index[p]: dict(s) for p, s in self.state.items()},
            "param_groups": [{**hyper, "params": list(range(len(self.params)))}],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state dict of :meth:`state_dict` or ``torch.optim.SGD`` over the same parameters,
        each buffer on its parameter's device and dtype (as ``torch.optim.SGD`` loads it)."""
        (group,) = state_dict["param_groups"]
        if len(group["params"]) != len(self.params):
            raise ValueError(
                f"optimiser state of {len(group['params'])} parameters, this network has "
                f"{len(self.params)}"
            )
        position = {saved: i for i, saved in enumerate(group["params"])}
        self.state = defaultdict(dict)
        for saved, entries in state_dict["state"].items():
            p = self.params[position[saved]]
            self.state[p] = {k: v.to(device=p.device, dtype=p.dtype) for k, v in entries.items()}
        self.param_groups[0].update({k: v for k, v in group.items() if k != "params"})
