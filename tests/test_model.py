"""The seed's modified AlexNet."""

import pytest
import torch

from hw5repro.model import AlexNet, PatchConv2d, count_parameters


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


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("padding,stride", [(0, 1), (1, 2)])
def test_patch_convolution_computes_the_convolution(groups, channels_last, padding, stride):
    """PatchConv2d (the first layer, as a matrix product of image patches) gives nn.Conv2d's
    output and weight gradients, with its parameters and state dict; the output's memory format is
    the module's."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(groups, 5 * groups, 4, padding=padding, stride=stride, groups=groups)
    patch = PatchConv2d(groups, 5 * groups, 4, padding=padding, stride=stride, groups=groups)
    assert patch.state_dict().keys() == conv.state_dict().keys()
    patch.load_state_dict(conv.state_dict())
    x = torch.randn(6, groups, 28, 28)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        patch, conv = (m.to(memory_format=torch.channels_last) for m in (patch, conv))
    grad = torch.randn_like(conv(x))
    expected, got = conv(x), patch(x)
    assert got.shape == expected.shape
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    assert got.is_contiguous(memory_format=memory_format)
    assert got.stride() == expected.stride()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    expected.backward(grad)
    got.backward(grad)
    torch.testing.assert_close(patch.weight.grad, conv.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(patch.bias.grad, conv.bias.grad, rtol=1e-4, atol=1e-4)


def test_patch_convolution_in_bf16_autocast_and_its_limits():
    torch.manual_seed(0)
    patch = PatchConv2d(1, 8, 4)
    conv = torch.nn.Conv2d(1, 8, 4)
    conv.load_state_dict(patch.state_dict())
    x = torch.randn(4, 1, 28, 28)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, expected = patch(x), conv(x)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected.float(), rtol=2e-2, atol=2e-2)
    assert isinstance(AlexNet().features[0], PatchConv2d)
    with pytest.raises(ValueError, match="one input channel per group"):
        PatchConv2d(2, 8, 3)
    with pytest.raises(ValueError, match="numeric zero padding"):
        PatchConv2d(1, 8, 3, padding="same")
