"""The homework's modified AlexNet for 28x28 MNIST, with an optional width multiplier."""

from __future__ import annotations

import torch
from torch import nn

from ..kernels.epilogues import forward_fused_epilogues, kernels_run_on

#: How each convolution's epilogue (bias, ReLU, max-pool) runs (``training.conv_epilogue``).
CONV_EPILOGUES = ("torch", "triton")


class Features(nn.Sequential):
    """The convolution stack: an ``nn.Sequential`` that, with ``triton_epilogues``, runs each
    convolution's bias, ReLU and max-pool as Triton kernels where they run
    (:mod:`hw5repro.kernels.epilogues`)."""

    def __init__(self, *layers: nn.Module, triton_epilogues: bool = False):
        super().__init__(*layers)
        self.triton_epilogues = triton_epilogues

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.triton_epilogues and kernels_run_on(x):
            return forward_fused_epilogues(self, x)
        return super().forward(x)


def conv_epilogue_used(model: nn.Module, device: torch.device) -> str:
    """``triton`` where ``model``'s :class:`Features` runs the kernels on ``device``, else torch."""
    features = next((m for m in model.modules() if isinstance(m, Features)), None)
    triton = features is not None and features.triton_epilogues and kernels_run_on(device)
    return "triton" if triton else "torch"


class AlexNet(nn.Module):
    """Six conv layers, two 3x3/2 max-pools, dropout and two linear layers.

    At ``width=1`` this is exactly the homework's network (the same parameters and state dict
    keys), except that the ReLU comes after each pool: max and ReLU commute exactly (forward and
    backward), and the ReLU then passes over a fourth of the activations. ``width`` scales every
    channel and hidden-unit count; ``init="kaiming"`` uses He's initialisation;
    ``conv_epilogue="triton"``: see :class:`Features`.
    """

    def __init__(
        self,
        num_classes: int = 10,
        width: float = 1.0,
        dropout: float = 0.5,
        init: str = "default",
        conv_epilogue: str = "torch",
    ):
        super().__init__()
        if conv_epilogue not in CONV_EPILOGUES:
            raise ValueError(
                f"unknown conv_epilogue {conv_epilogue!r}; expected one of {CONV_EPILOGUES}"
            )

        def w(channels: int) -> int:
            return max(1, round(channels * width))

        c1, c2, c3, c4, hidden = w(96), w(256), w(384), w(256), w(800)
        self.features = Features(
            nn.Conv2d(1, c1, kernel_size=4),  # 28 -> 25
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c1, kernel_size=3),  # 25 -> 23
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 23 -> 11
            nn.ReLU(inplace=True),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 11 -> 5
            nn.ReLU(inplace=True),
            triton_epilogues=conv_epilogue == "triton",
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
        """He-normal weights and zero biases. PyTorch's default (variance 1/(3 fan_in)) shrinks the
        signal's variance per ReLU layer, leaving this deep net on a long plateau at chance."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x):
        return self.classifier(self.features(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
