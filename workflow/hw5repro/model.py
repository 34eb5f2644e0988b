"""The seed's modified AlexNet for 28x28 MNIST, with an optional width multiplier."""

from __future__ import annotations

from torch import nn


class AlexNet(nn.Module):
    """Six conv layers, two 3x3/2 max-pools, dropout and two linear layers.

    At ``width=1`` this is exactly the seed's network (8,925,738 parameters, the same state dict
    keys). Where the seed pools after a ReLU, the ReLU comes after the pool: max and ReLU commute
    exactly (forward and backward; tests/test_model.py), and the ReLU then passes over a fourth
    of the activations. ``width`` scales every
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
