"""training.triton_eval's kernels (hw5repro.eval_kernels), run on the CPU in Triton's interpreter:
bit for bit what PyTorch's passes compute on CUDA (a convolution without bias, then the bias added
in a pass of its own, the ReLU, the max-pool)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import assert_same_metrics, count_calls
from hw5repro import eval_kernels
from hw5repro.model import AlexNet

DTYPES = [torch.float32, torch.bfloat16]


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def _activation(dtype, n=3, c=40, size=23, seed=0):
    """A convolution's output, channels_last, with a NaN and an -inf among ordinary values; 40
    channels and these sizes leave partial blocks of pixels and channels."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.randn(n, c, size, size, generator=gen) * 3
    out[0, 1, 4, 4], out[1, 2, 0, 0] = float("nan"), float("-inf")
    bias = torch.randn(c, generator=gen)
    return out.to(dtype).contiguous(memory_format=torch.channels_last), bias


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_epilogues_compute_what_pytorchs_passes_compute(interpreted, dtype):
    out, bias = _activation(dtype)
    b = bias.to(dtype).view(1, -1, 1, 1)  # as autocast rounds the bias for the convolution
    relu = eval_kernels.bias_relu(out, bias)
    _same(relu, torch.relu(out + b))
    assert relu.is_contiguous(memory_format=torch.channels_last)
    pooled = eval_kernels.pool_bias_relu(out, bias)
    _same(pooled, torch.relu(torch.nn.functional.max_pool2d(out + b, 3, 2)))
    # the NaN at (4, 4) lies in four windows (rows and columns 2-4 and 4-6)
    assert pooled.shape == (3, 40, 11, 11) and pooled.isnan().sum() == 4
    assert (pooled == 0).any() and (pooled > 0).any()
    if dtype == torch.bfloat16:
        # the sum is rounded to nearest even, as PyTorch does (the interpreter's own bf16 cast
        # truncates): some results need the rounding up
        truncated = ((out.float() + b.float()).view(torch.int32) & ~0xFFFF).view(torch.float32)
        assert (torch.relu(out + b).float() != torch.relu(truncated)).any()


def _pytorch_cuda_passes(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The features as PyTorch runs them on CUDA: each convolution without its bias, then the
    bias added in a pass of its own, then the ReLU or the max-pool."""
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            out = layer._conv_forward(x, layer.weight, None)
            x = out + layer.bias.to(out.dtype).view(1, -1, 1, 1)
        else:
            x = layer(x)
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
def test_the_networks_features_with_fused_epilogues_are_pytorchs(
    interpreted, monkeypatch, dtype, fmt
):
    """Every convolution of the AlexNet takes a fused epilogue (four bias + ReLU, two bias +
    pool + ReLU) and the features are PyTorch's bit for bit; a contiguous input (no kernel
    takes it) runs PyTorch's passes."""
    torch.manual_seed(0)
    model = AlexNet(width=0.25).to(dtype).to(memory_format=fmt).eval()
    x = torch.rand(5, 1, 28, 28).to(dtype).contiguous(memory_format=fmt)
    calls = count_calls(monkeypatch, eval_kernels, "bias_relu", "pool_bias_relu")
    with torch.inference_mode():
        fused = eval_kernels.forward_fused_epilogues(model.features, x)
        expected = _pytorch_cuda_passes(model.features, x)
    _same(fused, expected)
    assert (fused > 0).any() and (fused == 0).any()
    used = {"bias_relu": 4, "pool_bias_relu": 2} if fmt == torch.channels_last else {}
    assert calls == {"bias_relu": 0, "pool_bias_relu": 0} | used


def test_training_evaluates_with_the_kernels_and_measures_the_same(interpreted, monkeypatch):
    """training.triton_eval reaches the evaluation's networks (hw5repro.runset.make_runs) and
    evaluation runs the kernels (here in the interpreter, so on the CPU; where the setting
    resolves to true needs CUDA, so it is forced); the metrics are those of PyTorch's passes
    (oneDNN adds the bias inside its convolutions: fp32 losses within rounding)."""
    from test_training import small_settings, toy_data

    import hw5repro.runset as runset
    from hw5repro.training import train

    calls = count_calls(monkeypatch, eval_kernels, "pool_bias_relu")
    settings = small_settings(epochs=2, channels_last=True)  # the layout the kernels take
    data = toy_data(n=16, n_test=8)  # the interpreter runs each block of a kernel in Python
    plain, _, info = train(data, settings, seed=0, progress=False)
    assert info["triton_eval"] is False and calls == {"pool_bias_relu": 0}
    monkeypatch.setattr(runset, "resolve_triton_eval", lambda spec, device: True)
    fused, _, info = train(data, settings, seed=0, progress=False)
    assert info["triton_eval"] is True
    # two pooled convolutions, train + test set, two epochs
    assert calls == {"pool_bias_relu": 2 * 2 * 2}
    assert_same_metrics(plain, fused, rel=1e-5, abs=1e-6)


def test_triton_eval_setting_on_the_cpu(monkeypatch):
    from hw5repro.device import DeviceError, resolve_triton_eval

    cpu = torch.device("cpu")
    assert resolve_triton_eval("auto", cpu) is False and resolve_triton_eval(False, cpu) is False
    with pytest.raises(DeviceError, match="training.triton_eval is true but training runs on cpu"):
        resolve_triton_eval(True, cpu)
    # on CUDA it needs Triton
    monkeypatch.setattr(eval_kernels, "triton_available", lambda: False)
    with pytest.raises(DeviceError, match="training.triton_eval is true but Triton is not"):
        resolve_triton_eval(True, torch.device("cuda"))
