"""K independent AlexNets side by side in one process, each run's step on a CUDA stream of its own.

The other form of a group of runs in one job (``training.group_form: streams``; the first is
:mod:`hw5repro.fused`'s one network of grouped convolutions). Every run keeps its plain network
and with it the single run's kernels (cuDNN's convolutions, the Triton epilogues and first
convolution). On CUDA a step forks one stream per run from the step's stream, queues each run's
forward there (autograd runs each backward on its forward's stream) and joins them back before
the one SGD update of all runs' parameters. Captured in a CUDA graph
(:class:`~hw5repro.steps.GraphedStep`), a step is one replay with K independent branches that
the GPU may run at once: a batch-64 step of one run fills a fraction of a large GPU, and six
processes on one GPU only take turns. On a CPU the runs' steps run one after another, each
computing what it computes alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .model import AlexNet


class SideBySideAlexNets(nn.Module):
    """K :class:`~hw5repro.model.AlexNet` in one module: ``model(run, x)`` is run ``run``'s
    network on ``x``; ``parameters()`` are every run's, run by run."""

    def __init__(self, models: Sequence[AlexNet]):
        super().__init__()
        self.nets = nn.ModuleList(models)
        self.runs = len(models)

    def forward(self, run: int, x: torch.Tensor) -> torch.Tensor:
        return self.nets[run](x)

    def compiled(self) -> SideBySideAlexNets:
        """The same networks (the same parameters) through ``torch.compile`` one by one: they
        share AlexNet's compiled code, one graph per batch size. Compiled whole, this module
        would be compiled once per run index (``run`` is a constant to Dynamo) and, past
        Dynamo's recompile limit (8: nine runs), run eager with a mere warning."""
        return SideBySideAlexNets([torch.compile(net) for net in self.nets])


def side_by_side_loss(model, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], autocast):
    """The step's loss ``idx (K, B) -> (K,)``: run k's mean cross-entropy on ``xs[k][idx[k]]``,
    computed on run k's own stream on CUDA (forked from and joined to the caller's stream), one
    run after another elsewhere."""
    device = xs[0].device
    streams = [torch.cuda.Stream(device) for _ in xs] if device.type == "cuda" else None

    def run_loss(k, idx):
        with autocast():
            out = model(k, xs[k][idx])
        return F.cross_entropy(out.float(), ys[k][idx])

    def loss(idx):
        if streams is None:
            return torch.stack([run_loss(k, idx[k]) for k in range(len(xs))])
        caller = torch.cuda.current_stream(device)
        losses = []
        for k, stream in enumerate(streams):
            stream.wait_stream(caller)  # the step's inputs (indices, weights) are ready
            with torch.cuda.stream(stream):
                losses.append(run_loss(k, idx[k]))
        for stream in streams:
            caller.wait_stream(stream)
        return torch.stack(losses)

    return loss
