"""The seed's modified AlexNet."""

import pytest
import torch

from hw5repro.training.model import AlexNet, count_parameters


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


def _seed_order(model: AlexNet) -> torch.nn.Sequential:
    """The model's feature layers (the same modules) in the seed's order: ReLU before max-pool."""
    layers = list(model.features)
    for i, layer in enumerate(layers[:-1]):
        if isinstance(layer, torch.nn.MaxPool2d) and isinstance(layers[i + 1], torch.nn.ReLU):
            layers[i], layers[i + 1] = layers[i + 1], layer
    assert [type(m).__name__ for m in layers].count("MaxPool2d") == 2
    assert [type(m).__name__ for m in layers][4:7] == ["Conv2d", "ReLU", "MaxPool2d"]
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pooling_before_relu_is_the_seeds_network_bit_for_bit(dtype, fmt):
    """Max-pool then ReLU computes exactly what the seed's ReLU then max-pool computes, values
    and gradients, in fp32 and bf16, both memory formats, with inputs that leave whole pooling
    windows negative."""
    torch.manual_seed(0)
    model = AlexNet(width=0.25).to(dtype, memory_format=fmt)
    x = (torch.randn(8, 1, 28, 28) - 0.5).to(dtype, memory_format=fmt)
    results = []
    for features in (model.features, _seed_order(model)):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same dropout mask
        out = model.classifier(features(x))
        out.square().sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (out_a, grads_a), (out_b, grads_b) = results
    assert torch.equal(out_a, out_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b, strict=True))
    windows = torch.nn.functional.max_pool2d(model.features[:5](x), 3, 2)
    assert (windows <= 0).any() and (windows > 0).any()  # both cases of the ReLU are met


def test_triton_epilogues_keep_the_networks_weights_and_run_pytorchs_passes_on_the_cpu():
    """AlexNet(conv_epilogue="triton") has the plain network's parameters and state dict keys;
    outside CUDA (and Triton's interpreter) its features run PyTorch's passes, with the same
    outputs, and a run's record says so (``conv_epilogue_used``)."""
    from hw5repro.training.model import CONV_EPILOGUES, Features, conv_epilogue_used

    assert CONV_EPILOGUES == ("torch", "triton")
    torch.manual_seed(0)
    plain = AlexNet(width=0.25).eval()
    fused = AlexNet(width=0.25, conv_epilogue="triton").eval()
    assert isinstance(fused.features, Features) and fused.features.triton_epilogues
    assert not plain.features.triton_epilogues
    assert fused.state_dict().keys() == plain.state_dict().keys()
    fused.load_state_dict(plain.state_dict())
    x = torch.rand(5, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    assert torch.equal(fused(x), plain(x))
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert (conv_epilogue_used(fused, cuda), conv_epilogue_used(fused, cpu)) == ("triton", "torch")
    assert conv_epilogue_used(plain, cuda) == "torch"
    with pytest.raises(ValueError, match="unknown conv_epilogue 'gemm'"):
        AlexNet(conv_epilogue="gemm")
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        AlexNet(init="xavier")
