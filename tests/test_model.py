"""The seed's modified AlexNet."""

import pytest
import torch

from hw5repro.model import AlexNet, count_parameters


def test_full_width_matches_the_seed():
    model = AlexNet()
    assert count_parameters(model) == 8_925_738
    # layer shapes as in the seed's code
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [
        (1, 96, 4),
        (96, 96, 3),
        (96, 256, 5),
        (256, 384, 3),
        (384, 384, 3),
        (384, 256, 3),
    ]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(6400, 800), (800, 10)]
    dropout = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropout) == 1 and dropout[0].p == 0.5


@pytest.mark.parametrize("width", [0.125, 0.25, 1.0])
def test_output_shape_and_width_scaling(width):
    model = AlexNet(width=width).eval()
    out = model(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 10)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.out_channels == round(96 * width)


def test_width_eighth_is_much_smaller():
    assert count_parameters(AlexNet(width=0.125)) < count_parameters(AlexNet()) / 50
