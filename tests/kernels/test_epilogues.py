"""training.conv_epilogue: triton (hw5repro.kernels.epilogues), run on the CPU in Triton's
interpreter: forward (with and without autograd) and every gradient but the biases' are bit for
bit those of PyTorch's passes with each bias added after the max-pool (the reference below); the
bias gradients within rounding (another order of the sum)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import assert_same_metrics, count_calls, train_twice
from hw5repro.kernels import epilogues
from hw5repro.training.model import AlexNet, conv_epilogue_used

DTYPES = [torch.float32, torch.bfloat16]


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def bias_after_pool(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The reference of the kernels' values: the features with PyTorch's passes, each
    convolution without its bias, then (where a max-pool follows) the max-pool, then the bias
    added in a pass of its own (in the output's dtype), then the ReLU."""
    layers, i = list(layers), 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, nn.Conv2d):
            out = layer._conv_forward(x, layer.weight, None)
            pooled = i + 1 < len(layers) and isinstance(layers[i + 1], nn.MaxPool2d)
            if pooled:
                out = F.max_pool2d(out, 3, 2)
            x = torch.relu(out + layer.bias.to(out.dtype).view(1, -1, 1, 1))
            i += 3 if pooled else 2  # (conv, pool, relu) or (conv, relu)
        else:
            x = layer(x)
            i += 1
    return x


def _activation(dtype, n=3, c=40, size=23, seed=0):
    """A convolution's output, channels_last, with a NaN and an -inf among ordinary values; 40
    channels and these sizes leave partial blocks of pixels and channels."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.randn(n, c, size, size, generator=gen) * 3
    out[0, 1, 4, 4], out[1, 2, 0, 0] = float("nan"), float("-inf")
    bias = torch.randn(c, generator=gen)
    return out.to(dtype).contiguous(memory_format=torch.channels_last), bias


@pytest.mark.parametrize("dtype", DTYPES)
def test_evaluation_epilogues_compute_what_pytorchs_passes_compute(interpreted, dtype):
    out, bias = _activation(dtype)
    b = bias.to(dtype).view(1, -1, 1, 1)  # as autocast rounds the bias for the convolution
    relu = epilogues.eval_bias_relu(out, bias)
    _same(relu, torch.relu(out + b))
    assert relu.is_contiguous(memory_format=torch.channels_last)
    pooled = epilogues.eval_pool_bias_relu(out, bias)
    _same(pooled, torch.relu(F.max_pool2d(out, 3, 2) + b))
    # adding the bias after the pool gives the values of adding it before (rounding is monotone)
    _same(pooled, torch.relu(F.max_pool2d(out + b, 3, 2)))
    # the NaN at (4, 4) lies in four windows (rows and columns 2-4 and 4-6)
    assert pooled.shape == (3, 40, 11, 11) and pooled.isnan().sum() == 4
    assert (pooled == 0).any() and (pooled > 0).any()
    if dtype == torch.bfloat16:
        # the sum is rounded to nearest even, as PyTorch does (the interpreter's own bf16 cast
        # truncates): some results need the rounding up
        truncated = ((out.float() + b.float()).view(torch.int32) & ~0xFFFF).view(torch.float32)
        assert (torch.relu(out + b).float() != torch.relu(truncated)).any()


def _pool_grad_reference(grad, indices, size):
    """The max-pool's input gradient from PyTorch's indices as PyTorch's CUDA kernel gathers it:
    each window's gradient added to its max in fp32, windows in order (row, then column; the
    CPU's scatter adds in the order of the source), rounded once to the dtype."""
    flat = torch.zeros(size[0], size[1], size[2] * size[3])
    flat.scatter_add_(2, indices.flatten(2), grad.float().flatten(2))
    return flat.view(size).to(grad.dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pooled_epilogue_and_its_gradients_are_pytorchs(interpreted, dtype):
    gen = torch.Generator().manual_seed(0)
    out = (torch.randn(2, 40, 23, 23, generator=gen) * 3).to(dtype)
    out = out.contiguous(memory_format=torch.channels_last)
    bias = torch.randn(40, generator=gen)
    grad = torch.randn(2, 40, 11, 11, generator=gen).to(dtype)
    b = bias.to(dtype).view(1, -1, 1, 1)
    pooled, indices = F.max_pool2d(out, 3, 2, return_indices=True)
    y, arg = epilogues.pool_bias_relu_argmax(out, bias)
    torch.testing.assert_close(y, torch.relu(pooled + b), rtol=0, atol=0)
    # each max's place in its window is the one PyTorch picks (the first largest; bf16 has ties)
    oh = torch.arange(11).view(1, 1, 11, 1)
    ow = torch.arange(11).view(1, 1, 1, 11)
    place = (indices // 23 - 2 * oh) * 3 + (indices % 23 - 2 * ow)
    assert torch.equal(arg.long(), place)
    ties = F.unfold(out.float(), 3, stride=2) == pooled.float().flatten(2).repeat_interleave(9, 1)
    if dtype == torch.bfloat16:
        assert ties.view(2, 40, 9, -1).sum(2).gt(1).any()  # the tie rule was exercised
    # the ReLU's gradient (0 where the output is <= 0) and the bias gradient
    g, gb = epilogues.relu_grad(grad, y)
    torch.testing.assert_close(g, torch.where(y <= 0, 0, grad), rtol=0, atol=0)
    torch.testing.assert_close(gb.double(), g.double().sum((0, 2, 3)), rtol=1e-5, atol=1e-5)
    # the pool's gradient: gathered in fp32, rounded once
    gx = epilogues.pool_grad(g, arg, out.shape)
    assert gx.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(gx, _pool_grad_reference(g, indices, out.shape), rtol=0, atol=0)
    assert (gx != 0).sum() > 0 and (gx == 0).sum() > 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_pool_after_the_bias_routes_the_gradient_to_the_same_element_but_at_rounded_ties(dtype):
    """Why the kernels pool before adding the bias: the max-pool's gradient goes to the maximum
    of each window, which with the bias after the pool is the maximum of the convolution's
    output, with the bias before it the maximum of the rounded sums: the same element, except
    where adding the bias rounded two values of a window to the same number (then the gradient
    goes to the first of the tie, as PyTorch's max-pool does). Such ties occur in bf16 (8
    significant bits) and not in this fp32 sample."""
    gen = torch.Generator().manual_seed(1)
    conv_out = torch.randn(8, 16, 23, 23, generator=gen).to(dtype)
    bias = torch.randn(16, generator=gen).to(dtype).view(1, 16, 1, 1)
    biased, at_before = F.max_pool2d(conv_out + bias, 3, 2, return_indices=True)
    late, at_after = F.max_pool2d(conv_out, 3, 2, return_indices=True)
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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
def test_the_networks_features_in_evaluation_are_the_references(
    interpreted, monkeypatch, dtype, fmt
):
    """Without autograd every convolution of the AlexNet takes an evaluation epilogue (four
    bias + ReLU, two bias + pool + ReLU) and the features are the reference's bit for bit; a
    contiguous input (no kernel takes it) runs PyTorch's passes."""
    torch.manual_seed(0)
    model = AlexNet(width=0.25, conv_epilogue="triton").to(dtype).to(memory_format=fmt).eval()
    x = torch.rand(5, 1, 28, 28).to(dtype).contiguous(memory_format=fmt)
    calls = count_calls(monkeypatch, epilogues, "eval_bias_relu", "eval_pool_bias_relu")
    with torch.inference_mode():
        fused = model.features(x)
        expected = bias_after_pool(model.features, x)
    _same(fused, expected)
    assert (fused > 0).any() and (fused == 0).any()
    used = {"eval_bias_relu": 4, "eval_pool_bias_relu": 2} if fmt == torch.channels_last else {}
    assert calls == {"eval_bias_relu": 0, "eval_pool_bias_relu": 0} | used


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_networks_features_train_as_the_reference(interpreted, dtype):
    """AlexNet(conv_epilogue="triton") in the interpreter against the reference with the same
    weights: the same features bit for bit; in fp32 the same weight gradients bit for bit too,
    the bias gradients within rounding. (In bf16 PyTorch's CPU max-pool backward rounds a
    pixel's gradient from overlapping windows otherwise than its CUDA kernel, which the kernels
    follow bit for bit: the test above; so there all gradients are compared within bf16
    rounding.)"""
    torch.manual_seed(0)
    cl = torch.channels_last
    ours = AlexNet(width=0.25, conv_epilogue="triton").to(dtype).to(memory_format=cl)
    plain = AlexNet(width=0.25).to(dtype).to(memory_format=cl)
    plain.load_state_dict(ours.state_dict())
    x = torch.rand(3, 1, 28, 28).to(dtype).contiguous(memory_format=cl)
    grad = torch.randn(3, 64, 5, 5).to(dtype)
    mine, theirs = ours.features(x), bias_after_pool(plain.features, x)
    torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
    assert (mine > 0).any() and (mine == 0).any()
    mine.backward(grad)
    theirs.backward(grad)
    fp32 = dtype == torch.float32
    for (name, p), q in zip(ours.named_parameters(), plain.parameters(), strict=True):
        if not name.startswith("features"):
            continue
        exact = fp32 and name.endswith("weight")
        tol = 0 if exact else 1e-5 if fp32 else 2e-2 * q.grad.abs().max().item()
        torch.testing.assert_close(p.grad, q.grad, rtol=0 if exact else 1e-2, atol=tol, msg=name)
    with torch.inference_mode():  # evaluation: the same kernels' forward, no indices kept
        torch.testing.assert_close(ours.features(x), mine.detach(), rtol=0, atol=0)


def test_training_runs_the_epilogues_and_learns_what_pytorchs_passes_learn(
    interpreted, monkeypatch
):
    """conv_epilogue: triton reaches the network: training and evaluation run the kernels (here
    in the interpreter), the run's record says so, and the metrics are those of PyTorch's passes
    within fp32 rounding (oneDNN adds the biases inside its convolutions on the CPU)."""
    calls = count_calls(monkeypatch, epilogues, "relu_grad", "pool_grad", "eval_pool_bias_relu")
    (plain, plain_info), (ours, info) = train_twice(8, conv_epilogue="triton")
    assert (plain_info["conv_epilogue"], info["conv_epilogue"]) == ("torch", "triton")
    assert info["model"]["conv_epilogue"] == "triton"
    # the second training's one step, with six ReLU gradients (two of them pooled); its
    # evaluation of the training and the test images, two pooled epilogues each
    assert calls == {"relu_grad": 6, "pool_grad": 2, "eval_pool_bias_relu": 4}
    assert_same_metrics(plain, ours, rel=1e-4, abs=1e-5)


def test_conv_epilogue_triton_outside_the_interpreter_is_the_plain_network(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(epilogues, "_kernels", lambda: pytest.fail("the kernels ran"))
    torch.manual_seed(0)
    ours, plain = AlexNet(width=0.25, conv_epilogue="triton").eval(), AlexNet(width=0.25).eval()
    plain.load_state_dict(ours.state_dict())
    x = torch.rand(2, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    assert torch.equal(ours(x), plain(x))
    assert not epilogues.kernels_run_on(x)
    assert epilogues.kernels_run_on(torch.device("cuda"))
    assert conv_epilogue_used(ours, torch.device("cpu")) == "torch"
    assert conv_epilogue_used(ours, torch.device("cuda")) == "triton"


def test_conv_epilogue_setting_resolves_per_device(monkeypatch):
    from hw5repro.training.device import DeviceError
    from hw5repro.training.settings import resolve_conv_epilogue

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_conv_epilogue("auto", cpu) == "torch"
    assert resolve_conv_epilogue("triton", cpu) == "triton"  # PyTorch's passes there
    monkeypatch.setattr(epilogues, "triton_available", lambda: True)
    assert resolve_conv_epilogue("auto", cuda) == "triton"
    monkeypatch.setattr(epilogues, "triton_available", lambda: False)
    assert resolve_conv_epilogue("auto", cuda) == "torch"
    with pytest.raises(DeviceError, match="training.conv_epilogue is triton but Triton is not"):
        resolve_conv_epilogue("triton", cuda)
