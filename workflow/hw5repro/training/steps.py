"""Training steps. A step is a callable ``step(idx) -> loss``: it trains on the minibatch ``idx``
(forward, backward, SGD update) and returns its mean loss as a device scalar valid until the next
call; ``run_epoch`` drives any step over the epoch's permutation. :class:`EagerStep` runs op by op;
:class:`GraphedStep` replays it captured in a CUDA graph (one launch per step): the indices are
copied into a static buffer before each replay, dropout draws fresh masks at every replay (CUDA's
generator is graph-safe), and the warm-up steps before capture are undone, so both steps compute
the same trajectory.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class EagerStep:
    """One SGD step, op by op: ``loss(idx)`` is the minibatch's mean loss."""

    def __init__(self, model, optimizer, loss):
        self.model, self.optimizer, self.loss = model, optimizer, loss
        self.device = next(model.parameters()).device

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        loss = self.loss(idx)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def minibatch_loss(model, x, y, autocast):
    """Mean cross-entropy of one run's minibatch ``x[idx]`` (x, y resident on the device)."""

    def loss(idx):
        with autocast():
            out = model(x[idx])
        return F.cross_entropy(out.float(), y[idx])

    return loss


class GraphedStep:
    """An :class:`EagerStep` captured in one CUDA graph per minibatch size and replayed."""

    def __init__(self, eager: EagerStep, batch_sizes, warmup: int = 3):
        self.eager = eager
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.device = device = eager.device
        saved = _snapshot(eager.model, eager.optimizer, device)
        for size in sorted(set(batch_sizes), reverse=True):
            idx = torch.arange(size, device=device)
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):  # warm-up: cuDNN autotuning, optimiser state
                for _ in range(warmup):
                    eager(idx)
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            eager.optimizer.zero_grad(set_to_none=True)  # gradients are allocated in the graph
            with torch.cuda.graph(graph):
                loss = eager(idx)
            self.graphs[size] = (graph, idx, loss)
        _restore(saved, eager.model, eager.optimizer, device)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        graph, static_idx, loss = self.graphs[idx.shape[0]]
        static_idx.copy_(idx)
        graph.replay()
        return loss


def batch_sizes(n: int, batch_size: int) -> set[int]:
    """Minibatch sizes of an epoch over ``n`` examples: full batches and the smaller last one."""
    return {batch_size, n - batch_size * (math.ceil(n / batch_size) - 1)}


def permutation(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """The epoch's order of the examples by ``generator``, on ``device`` (asynchronously)."""
    perm = torch.randperm(n, device=generator.device, generator=generator)
    if perm.device == device:
        return perm
    if device.type == "cuda" and perm.device.type == "cpu":
        return perm.pin_memory().to(device, non_blocking=True)
    return perm.to(device)


def run_epoch(step, n: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """One epoch of minibatch SGD over the generator's permutation (the last batch may be smaller,
    as a DataLoader's); returns the per-step losses ``(steps,)`` on the device (no host sync)."""
    perm = permutation(n, generator, step.device)
    steps = math.ceil(n / batch_size)
    losses = torch.empty(steps, device=perm.device)
    for i in range(steps):
        losses[i] = step(perm[i * batch_size : (i + 1) * batch_size])
    return losses


def train_epoch(model, optimizer, x, y, batch_size, generator, autocast) -> torch.Tensor:
    """One eager epoch of minibatch SGD (the benchmarks' and tests' entry point)."""
    model.train()
    step = EagerStep(model, optimizer, minibatch_loss(model, x, y, autocast))
    return run_epoch(step, x.shape[0], batch_size, generator)


def mean_loss(losses: torch.Tensor, n: int, batch_size: int) -> torch.Tensor:
    """The epoch's mean loss per example from per-step mean losses (the last batch smaller)."""
    weights = torch.full(losses.shape[:1], float(batch_size), device=losses.device)
    weights[-1] = n - batch_size * (losses.shape[0] - 1)
    return torch.tensordot(weights, losses, dims=1) / n


def _snapshot(model, optimizer, device) -> dict:
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "optimizer": {
            id(p): {k: v.clone() for k, v in optimizer.state[p].items() if torch.is_tensor(v)}
            for p in model.parameters()
            if p in optimizer.state
        },
        "cpu_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device),
    }


def _restore(saved: dict, model, optimizer, device) -> None:
    """Undo the warm-up steps in place (the graphs hold these tensors' addresses)."""
    with torch.no_grad():
        for p, value in zip(model.parameters(), saved["params"], strict=True):
            p.copy_(value)
        for p in model.parameters():
            before = saved["optimizer"].get(id(p), {})
            for key, value in optimizer.state.get(p, {}).items():
                if torch.is_tensor(value):
                    # a new momentum buffer acts as zero: SGD's first step sets buf = grad
                    value.copy_(before[key]) if key in before else value.zero_()
    torch.set_rng_state(saved["cpu_rng"])
    torch.cuda.set_rng_state(saved["cuda_rng"], device)
