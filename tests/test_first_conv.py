"""training.first_conv: triton (hw5repro.first_conv), the first convolution as Triton kernels,
run on the CPU in Triton's interpreter: the forward is the sum of the taps in order, bit for bit;
the gradients are the convolution's; the module is nn.Conv2d wherever the kernels do not apply."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import assert_same_metrics, count_calls, train_twice
from hw5repro import first_conv
from hw5repro.device import DeviceError, resolve_triton_settings
from hw5repro.first_conv import FirstConv2d, first_conv_used, taps_in_order
from hw5repro.model import AlexNet
from hw5repro.training import Settings

DTYPES = [torch.float32, torch.bfloat16]
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def _inputs(dtype, n=2, c=40, size=28, kernel=4, seed=0, fmt=torch.channels_last):
    """An image batch, weights and bias; 40 channels and 2 x 25 x 25 pixels leave partial blocks
    of channels and pixels."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=gen).to(dtype).contiguous(memory_format=fmt)
    w = (torch.randn(c, 1, kernel, kernel, generator=gen) * 0.3).to(dtype)
    b = torch.randn(c, generator=gen).to(dtype)
    return x, w, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
def test_forward_sums_the_taps_in_order(interpreted, dtype, fmt):
    x, w, b = _inputs(dtype, fmt=fmt)
    for bias in (b, None):
        y = first_conv.conv_forward(x, w, bias)
        assert y.dtype == dtype and y.shape == (2, 40, 25, 25)
        assert y.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(y, taps_in_order(x, w, bias), rtol=0, atol=0)
        # ... which is the convolution, up to the rounding of its output
        expected = F.conv2d(x.double(), w.double(), None if bias is None else bias.double())
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(y.double(), expected, rtol=tol, atol=tol)
    # a non-square kernel on a strided view of a bigger image
    wide = torch.randn(20, 1, 2, 5).to(dtype)
    view = torch.rand(2, 1, 30, 31).to(dtype)[:, :, 1:29, 2:30]
    y = first_conv.conv_forward(view, wide, b[:20])
    torch.testing.assert_close(y, taps_in_order(view, wide, b[:20]), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_gives_the_convolutions_gradients_deterministically(interpreted, dtype):
    x, w, b = _inputs(dtype)
    grad = torch.randn(2, 40, 25, 25).to(dtype)  # contiguous: the kernel takes channels_last
    gw, gb = first_conv.conv_backward(x, grad, (4, 4), 40)
    assert gw.shape == (40, 1, 4, 4) and gb.shape == (40,) and gw.dtype == torch.float32
    w64, b64 = w.double().requires_grad_(), b.double().requires_grad_()
    F.conv2d(x.double(), w64, b64).backward(grad.double())
    torch.testing.assert_close(gw.double(), w64.grad, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(gb.double(), b64.grad, rtol=1e-5, atol=1e-4)
    again = first_conv.conv_backward(
        x, grad.contiguous(memory_format=torch.channels_last), (4, 4), 40
    )
    assert torch.equal(again[0], gw) and torch.equal(again[1], gb)


def test_the_module_trains_like_nn_conv2d_in_fp32_and_under_autocast(interpreted):
    """FirstConv2d has nn.Conv2d's parameters and state dict; its outputs and parameter gradients
    (through the in-place ReLU that follows it in the network) are nn.Conv2d's, in fp32 within
    rounding and under bf16 autocast the kernel's own sums of the bf16-rounded operands."""
    torch.manual_seed(0)
    ours, plain = FirstConv2d(1, 24, kernel_size=4), nn.Conv2d(1, 24, kernel_size=4)
    plain.load_state_dict(ours.state_dict())
    assert list(ours.state_dict()) == ["weight", "bias"]
    x = torch.rand(4, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(4, 24, 25, 25)
    for net in (ours, plain):
        y = F.relu(net(x), inplace=True)
        y.backward(grad)
    torch.testing.assert_close(y, F.relu(plain(x)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.weight.grad, plain.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.bias.grad, plain.bias.grad, rtol=1e-4, atol=1e-4)
    ours.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = ours(x)
    assert y.dtype == torch.bfloat16
    bf16 = [t.to(torch.bfloat16) for t in (x, ours.weight, ours.bias)]
    torch.testing.assert_close(y, taps_in_order(*bf16), rtol=0, atol=0)
    y.float().backward(grad)
    assert ours.weight.grad.dtype == torch.float32  # through autocast's cast of the weight
    w64 = bf16[1].detach().double().requires_grad_()
    F.conv2d(bf16[0].double(), w64).backward(grad.to(torch.bfloat16).double())
    torch.testing.assert_close(ours.weight.grad.double(), w64.grad, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("interpret", [False, True])
def test_where_the_kernels_do_not_apply_it_is_nn_conv2d(interpreted, monkeypatch, interpret):
    """On the CPU (outside the interpreter) every input, and inputs the kernels do not take
    (padding, stride, several input channels) anywhere, run nn.Conv2d's convolution exactly."""
    if not interpret:
        monkeypatch.delenv("TRITON_INTERPRET")
    monkeypatch.setattr(first_conv, "conv_forward", lambda *a: pytest.fail("the kernels ran"))
    torch.manual_seed(0)
    shapes = [((1, 8, 3), {"padding": 1}), ((3, 8, 3), {}), ((1, 8, 3), {"stride": 2})]
    for args, kw in shapes + ([] if interpret else [((1, 8, 4), {})]):
        ours, plain = FirstConv2d(*args, **kw), nn.Conv2d(*args, **kw)
        plain.load_state_dict(ours.state_dict())
        x = torch.rand(2, args[0], 12, 12)
        assert torch.equal(ours(x), plain(x)), (args, kw)


def test_the_setting_builds_and_reports_the_first_convolution(monkeypatch):
    triton_net, torch_net = AlexNet(width=0.25, first_conv="triton"), AlexNet(width=0.25)
    assert isinstance(triton_net.features[0], FirstConv2d)
    assert not any(isinstance(m, FirstConv2d) for m in torch_net.modules())
    assert list(triton_net.state_dict()) == list(torch_net.state_dict())
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert first_conv_used(triton_net, CUDA) == "triton"
    assert first_conv_used(triton_net, CPU) == "torch" == first_conv_used(torch_net, CUDA)
    with pytest.raises(ValueError, match="unknown first_conv 'cudnn'"):
        AlexNet(first_conv="cudnn")
    # auto -> triton on CUDA where Triton is installed, else PyTorch's forms; triton (here, or
    # as conv_bias) chosen on CUDA needs Triton; on a CPU it runs PyTorch's passes
    from hw5repro import eval_kernels

    def resolved(device, first_conv="auto", conv_bias="auto"):
        chosen = Settings(1, 64, 0.01, first_conv=first_conv, conv_bias=conv_bias)
        settings = resolve_triton_settings(chosen, device)
        return settings.first_conv, settings.conv_bias

    assert Settings(1, 64, 0.01).first_conv == "torch"  # the dataclass's own: PyTorch's forms
    monkeypatch.setattr(eval_kernels, "triton_available", lambda: True)
    assert resolved(CUDA) == ("triton", "triton") and resolved(CPU) == ("torch", "add")
    assert resolved(CPU, "triton", "triton") == ("triton", "triton")
    assert resolved(CUDA, "torch", "gemm") == ("torch", "gemm")
    monkeypatch.setattr(eval_kernels, "triton_available", lambda: False)
    assert resolved(CUDA) == ("torch", "add")
    assert resolved(CPU, "triton", "triton") == ("triton", "triton")
    with pytest.raises(DeviceError, match="training.first_conv is triton but Triton is not"):
        resolved(CUDA, first_conv="triton")
    with pytest.raises(DeviceError, match="training.conv_bias is triton but Triton is not"):
        resolved(CUDA, conv_bias="triton")


def test_training_runs_the_kernels_and_learns_what_cudnn_would(interpreted, monkeypatch):
    """training.first_conv: triton reaches the network (hw5repro.runset.model_settings): training
    and evaluation run the kernels (here in the interpreter), the run's record says so, and the
    metrics are those of PyTorch's convolution within fp32 rounding."""
    calls = count_calls(monkeypatch, first_conv, "conv_forward", "conv_backward")
    (plain, plain_info), (ours, info) = train_twice(16, first_conv="triton")
    assert (plain_info["first_conv"], info["first_conv"]) == ("torch", "triton")
    # the second training's two steps; evaluation of the training and the test set (a batch each)
    assert calls == {"conv_forward": 2 + 2, "conv_backward": 2}
    assert_same_metrics(plain, ours, rel=1e-4, abs=1e-5)
