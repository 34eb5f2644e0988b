"""K independent AlexNets as one network: horizontal fusion (HFTA, Wang et al., MLSys 2021).

Run k's network lives in block k of every layer: convolutions become grouped convolutions with
K groups (run k's input is channel k of the fused input), the two linear layers batched matrix
products over a leading run dimension. Nothing is shared between runs, so one SGD optimiser over
the fused parameters is exactly K independent SGD optimisers (every update is elementwise), and
the fused loss, the sum of the runs' mean losses, gives each run the gradient it gets alone.

A convolution's bias, ReLU and max-pool act on each channel alone, so the Triton epilogues of
``conv_bias: triton`` (:mod:`hw5repro.train_epilogues`) take the grouped convolutions' outputs as
they are: a fused network built from AlexNets with those epilogues runs them too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .model import AlexNet, Features


def _linears(model: AlexNet) -> tuple[nn.Linear, nn.Linear]:
    first, second = (m for m in model.classifier if isinstance(m, nn.Linear))
    return first, second


class FusedAlexNet(nn.Module):
    """K copies of :class:`~hw5repro.model.AlexNet` (same shape, own weights) in one module.

    ``forward`` takes ``(B, K, 28, 28)`` (run k's images in channel k) and returns logits
    ``(K, B, classes)``; :meth:`unfused` gives run k's weights as an AlexNet state dict. Its
    convolutions are cuDNN's grouped ones (``first_conv: triton`` does not apply); their
    epilogues are Triton kernels where the AlexNets' are (``conv_bias: triton``), else PyTorch's
    passes (``gemm`` and ``after_pool`` do not apply).
    """

    def __init__(self, models: Sequence[AlexNet]):
        super().__init__()
        self.runs = k = len(models)
        layers = []
        for layer in models[0].features:
            if isinstance(layer, nn.Conv2d):
                layer = nn.Conv2d(
                    k * layer.in_channels,
                    k * layer.out_channels,
                    layer.kernel_size,
                    stride=layer.stride,
                    padding=layer.padding,
                    groups=k,
                )
            else:
                layer = type(layer)(**_init_args(layer))
            layers.append(layer)
        triton = models[0].features.triton_epilogues
        self.features = Features(*layers, triton_epilogues=triton)
        dropout = next(m for m in models[0].classifier if isinstance(m, nn.Dropout))
        self.dropout = nn.Dropout(dropout.p)
        # (K, in, out) weights and (K, 1, out) biases for baddbmm.
        fc1, fc2 = _linears(models[0])
        self.w1 = nn.Parameter(torch.empty(k, fc1.in_features, fc1.out_features))
        self.b1 = nn.Parameter(torch.empty(k, 1, fc1.out_features))
        self.w2 = nn.Parameter(torch.empty(k, fc2.in_features, fc2.out_features))
        self.b2 = nn.Parameter(torch.empty(k, 1, fc2.out_features))
        self.load_state_dict(self.fuse([m.state_dict() for m in models]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)  # (B, K * C, 5, 5)
        flat = features.reshape(x.shape[0], self.runs, -1).transpose(0, 1)  # (K, B, C * 25)
        hidden = F.relu(torch.baddbmm(self.b1, self.dropout(flat), self.w1))
        return torch.baddbmm(self.b2, hidden, self.w2)

    def unfused(self, run: int) -> dict[str, torch.Tensor]:
        """Run ``run``'s weights as a state dict of :class:`AlexNet` (copies)."""
        return self.unfuse(dict(self.named_parameters()), run)

    def _blocks(self):
        """(fused name, AlexNet name, how run k's block is cut out of the fused tensor)."""
        for i, layer in enumerate(self.features):
            if isinstance(layer, nn.Conv2d):
                out = layer.out_channels // self.runs
                for kind in ("weight", "bias"):
                    yield f"features.{i}.{kind}", f"features.{i}.{kind}", ("rows", out)
        yield "w1", "classifier.2.weight", ("transposed", None)
        yield "b1", "classifier.2.bias", ("bias", None)
        yield "w2", "classifier.4.weight", ("transposed", None)
        yield "b2", "classifier.4.bias", ("bias", None)

    def unfuse(self, tensors: dict[str, torch.Tensor], run: int) -> dict[str, torch.Tensor]:
        """Run ``run``'s block of each fused tensor (parameters, or per-parameter optimiser
        state such as momentum buffers), keyed by the AlexNet name (copies)."""
        out = {}
        for fused_name, name, (how, rows) in self._blocks():
            if fused_name not in tensors:
                continue
            value = tensors[fused_name].detach()
            if how == "rows":
                out[name] = value[run * rows : (run + 1) * rows].clone()
            elif how == "transposed":
                out[name] = value[run].t().clone()
            else:
                out[name] = value[run, 0].clone()
        return out

    def fuse(self, per_run: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The inverse of :meth:`unfuse`: K AlexNet-named dicts -> fused-named tensors."""
        out = {}
        for fused_name, name, (how, _) in self._blocks():
            if not all(name in run for run in per_run):
                continue
            blocks = [run[name] for run in per_run]
            if how == "rows":
                out[fused_name] = torch.cat(blocks)
            elif how == "transposed":
                out[fused_name] = torch.stack([b.t() for b in blocks]).contiguous()
            else:
                out[fused_name] = torch.stack(blocks).unsqueeze(1)
        return out


def _init_args(layer: nn.Module) -> dict:
    if isinstance(layer, nn.MaxPool2d):
        return {"kernel_size": layer.kernel_size, "stride": layer.stride}
    if isinstance(layer, nn.ReLU):
        return {"inplace": layer.inplace}
    raise TypeError(f"cannot fuse layer {layer!r}")


def fused_batch(x: torch.Tensor, idx: torch.Tensor, memory_format) -> torch.Tensor:
    """Run k's images ``x[k, idx[k]]`` as channel k: ``x`` (K, N, 28, 28), ``idx`` (K, B) ->
    (B, K, 28, 28)."""
    runs = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    return x[runs, idx].transpose(0, 1).contiguous(memory_format=memory_format)


def fused_loss(logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Each run's mean cross-entropy on its own batch: logits (K, B, C), y (K, N) -> (K,)."""
    runs = torch.arange(y.shape[0], device=y.device).unsqueeze(1)
    targets = y[runs, idx]
    losses = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    return losses.view(targets.shape).mean(1)


def fused_minibatch_loss(model: FusedAlexNet, x, y, autocast, memory_format):
    """The fused step's loss: run k's mean cross-entropy on ``x[k, idx[k]]``, for every k."""

    def loss(idx):
        with autocast():
            out = model(fused_batch(x, idx, memory_format))
        return fused_loss(out, y, idx)

    return loss
