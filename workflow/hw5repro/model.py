"""The seed's modified AlexNet for 28x28 MNIST, with an optional width multiplier."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchConv2d(nn.Conv2d):
    """A convolution with one input channel per group (the layer that sees the images), computed
    as a matrix product of image patches (``unfold``, then ``baddbmm``, one product per group).

    Same parameters, state dict and result as :class:`torch.nn.Conv2d` (up to float rounding),
    but fast on GPUs: cuDNN runs this layer (1 -> 96 channels, 4x4) at about 1 TFLOP/s in a
    training step on an H100, a seventh of the step's time for a thousandth of its work
    (``benchmarks/results/gpu/a9755f9-sweep-probe-zhang/conv_efficiency_cuda_w1.json``), while
    the matrix product runs at GEMM speed. Like a convolution's, the output's memory format is the
    module's: channels_last after ``.to(memory_format=torch.channels_last)`` (the product's own
    layout, no copy), contiguous otherwise.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.in_channels != self.groups or self.dilation != (1, 1):
            raise ValueError("PatchConv2d needs one input channel per group and no dilation")
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError("PatchConv2d needs numeric zero padding")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, g, h, w = x.shape
        (kh, kw), (ph, pw), (sh, sw) = self.kernel_size, self.padding, self.stride
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        p, o = kh * kw, self.out_channels // g
        patches = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)
        patches = patches.view(b, g, p, ho * wo).permute(1, 0, 3, 2).reshape(g, b * ho * wo, p)
        weight = self.weight.view(g, o, p).transpose(1, 2)  # (G, P, O)
        if self.bias is None:
            out = torch.bmm(patches, weight)
        else:
            out = torch.baddbmm(self.bias.view(g, 1, o), patches, weight)  # (G, B*L, O)
        out = out.view(g, b, ho, wo, o).permute(1, 2, 3, 0, 4).reshape(b, ho, wo, g * o)
        out = out.permute(0, 3, 1, 2)  # (B, G*O, Ho, Wo), channels_last
        # a (G*O, 1, kh, kw) weight has stride 1 in dim 1 only once made channels_last
        return out if self.weight.stride(1) == 1 else out.contiguous()


class AlexNet(nn.Module):
    """Five conv layers, two 3x3/2 max-pools, dropout and two linear layers.

    At ``width=1`` this is exactly the seed's network (8,925,738 parameters); ``width`` scales every
    channel and hidden-unit count for fast CPU runs; ``init="kaiming"`` replaces PyTorch's default
    initialisation by He's.
    """

    def __init__(
        self, num_classes: int = 10, width: float = 1.0, dropout: float = 0.5, init: str = "default"
    ):
        super().__init__()

        def w(channels: int) -> int:
            return max(1, round(channels * width))

        c1, c2, c3, c4, hidden = w(96), w(256), w(384), w(256), w(800)
        self.features = nn.Sequential(
            PatchConv2d(1, c1, kernel_size=4),  # 28 -> 25
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c1, kernel_size=3),  # 25 -> 23
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 23 -> 11
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 11 -> 5
        )
        self.classifier = nn.Sequential(
            nn.Flatten(1),
            nn.Dropout(dropout),
            nn.Linear(c4 * 5 * 5, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        if init == "kaiming":
            self._kaiming_init()
        elif init != "default":
            raise ValueError(f"unknown init {init!r}; expected 'default' or 'kaiming'")

    def _kaiming_init(self) -> None:
        """He-normal weights and zero biases. PyTorch's default (uniform, variance 1/(3 fan_in))
        shrinks the signal about sixfold in variance per ReLU layer, which leaves this deep net on a
        long loss plateau at chance; He initialisation keeps the variance and starts learning at
        once (used by the CPU presets; the paper-scale run keeps the seed's default)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x):
        return self.classifier(self.features(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
