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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bias_as_a_matrix_product_adds_the_same_values(dtype):
    """conv_bias: gemm (hw5repro.model.add_bias): out + bias as addmm(out2d, ones, bias) rounds
    the same sum once, so the values equal the broadcast add's bit for bit; the input's gradient
    passes unchanged and the bias gradient is the same sum in another order."""
    from hw5repro.model import add_bias

    gen = torch.Generator().manual_seed(0)
    out = torch.randn(4, 12, 7, 7, generator=gen).to(dtype)
    bias = torch.randn(12, generator=gen).to(dtype)
    grad = torch.randn(4, 12, 7, 7, generator=gen).to(dtype)
    for fmt in (torch.channels_last, torch.contiguous_format):  # contiguous: the broadcast add
        x = out.contiguous(memory_format=fmt).requires_grad_()
        b = bias.clone().requires_grad_()
        summed = add_bias(x, b)
        assert summed.is_contiguous(memory_format=fmt)
        assert torch.equal(summed, out + bias.view(1, 12, 1, 1))
        summed.backward(grad.contiguous(memory_format=fmt))
        assert torch.equal(x.grad, grad)
        expected = grad.float().sum((0, 2, 3))
        assert torch.allclose(
            b.grad.float(), expected, rtol=1e-2 if dtype == torch.bfloat16 else 1e-5
        )


def _bias_before_the_pool(layers, x):
    """What PyTorch computes on CUDA: each pooled convolution without bias, then its bias added
    (before the pool) in a pass of its own."""
    for i, layer in enumerate(layers):
        if i + 1 < len(layers) and isinstance(layers[i + 1], torch.nn.MaxPool2d):
            x = layer._conv_forward(x, layer.weight, None) + layer.bias.view(1, -1, 1, 1)
        else:
            x = layer(x)
    return x


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
def test_bias_after_the_pool_gives_the_values_of_the_bias_before_it(dtype, fmt):
    """conv_bias: after_pool (hw5repro.model.Features): the pooled convolutions add their bias
    after the max-pool. Rounding is monotone, so the features are those of the bias before the
    pool bit for bit, in fp32 and bf16, channels_last (the bias as a matrix product) and
    contiguous (the broadcast add). In fp32 every gradient but the late biases' is the same bit
    for bit too (bf16: see the next test); the late biases' is the same sum in another order."""
    from hw5repro.model import Features, forward_bias_after_pool

    torch.manual_seed(0)
    model = AlexNet(width=0.25, conv_bias="after_pool").to(dtype).to(memory_format=fmt)
    assert isinstance(model.features, Features) and model.features.bias_after_pool
    x = torch.randn(6, 1, 28, 28).to(dtype).contiguous(memory_format=fmt)
    upstream = torch.randn(6, 64, 5, 5).to(dtype).contiguous(memory_format=fmt)
    results = []
    for forward in (_bias_before_the_pool, forward_bias_after_pool):
        model.zero_grad()
        xi = x.clone().requires_grad_()
        out = forward(model.features, xi)
        out.backward(upstream)
        grads = {n: p.grad.clone() for n, p in model.features.named_parameters()}
        results.append((out.detach(), xi.grad, grads))
    (before, x_before, g_before), (after, x_after, g_after) = results
    assert (before > 0).any() and (before == 0).any()
    assert torch.equal(after, before)
    if dtype == torch.float32:
        assert torch.equal(x_after, x_before)
        for name, grad in g_before.items():
            if name in ("4.bias", "11.bias"):  # the biases added after the pool
                assert torch.allclose(g_after[name], grad, rtol=1e-5, atol=1e-6), name
            else:
                assert torch.equal(g_after[name], grad), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_pool_after_the_bias_routes_the_gradient_to_the_same_element_but_at_rounded_ties(dtype):
    """The max-pool's gradient goes to the maximum of each window. With the bias after the pool
    that is the maximum of the convolution's output, with the bias before it the maximum of the
    rounded sums: the same element, except where adding the bias rounded two values of a window
    to the same number (then the gradient goes to the first of the tie, as PyTorch's max-pool
    does). Such ties occur in bf16 (8 significant bits) and not in this fp32 sample."""
    gen = torch.Generator().manual_seed(1)
    conv_out = torch.randn(8, 16, 23, 23, generator=gen).to(dtype)
    bias = torch.randn(16, generator=gen).to(dtype).view(1, 16, 1, 1)
    pool = torch.nn.functional.max_pool2d
    biased, at_before = pool(conv_out + bias, 3, 2, return_indices=True)
    late, at_after = pool(conv_out, 3, 2, return_indices=True)
    assert torch.equal(late + bias, biased)
    moved = at_before != at_after
    flat_sum = (conv_out + bias).flatten(2)
    flat_out = conv_out.flatten(2)
    pick = lambda t, idx: t.gather(2, idx.flatten(2))[moved.flatten(2)]  # noqa: E731
    # where the gradient goes elsewhere: a tie of the rounded sums, the unrounded max elsewhere
    assert torch.equal(pick(flat_sum, at_before), pick(flat_sum, at_after))
    assert (pick(flat_out, at_after) > pick(flat_out, at_before)).all()
    if dtype == torch.bfloat16:
        assert 0 < moved.float().mean() < 0.05
    else:
        assert not moved.any()


def test_gemm_bias_network_has_the_seeds_weights_and_outputs_on_the_cpu():
    """AlexNet(conv_bias="gemm") has the seed's parameters and state dict keys; on the CPU its
    convolutions are nn.Conv2d's (oneDNN adds the bias inside the convolution); elsewhere the
    product gives what a convolution without bias plus the bias gives."""
    import torch.nn.functional as F

    from hw5repro.model import GemmBiasConv2d, add_bias, conv_bias_used

    torch.manual_seed(0)
    plain = AlexNet(width=0.25).eval()
    gemm = AlexNet(width=0.25, conv_bias="gemm").eval()
    assert gemm.state_dict().keys() == plain.state_dict().keys()
    assert sum(isinstance(m, GemmBiasConv2d) for m in gemm.modules()) == 6
    gemm.load_state_dict(plain.state_dict())
    x = torch.rand(5, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    assert torch.equal(gemm(x), plain(x))
    conv = gemm.features[0]
    with_bias = F.conv2d(x, conv.weight, conv.bias)
    assert torch.allclose(add_bias(F.conv2d(x, conv.weight), conv.bias), with_bias, atol=1e-6)
    # what a run's record states: the product only where it runs (CUDA)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert (conv_bias_used(gemm, cuda), conv_bias_used(gemm, cpu)) == ("gemm", "add")
    assert conv_bias_used(plain, cuda) == "add"
    # after_pool: the same parameters; on the CPU the plain network
    late = AlexNet(width=0.25, conv_bias="after_pool").eval()
    assert late.state_dict().keys() == plain.state_dict().keys()
    late.load_state_dict(plain.state_dict())
    assert torch.equal(late(x), plain(x))
    assert (conv_bias_used(late, cuda), conv_bias_used(late, cpu)) == ("after_pool", "add")
    with pytest.raises(ValueError, match="unknown conv_bias 'fused'"):
        AlexNet(conv_bias="fused")
