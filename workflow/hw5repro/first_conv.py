"""The network's first convolution (one input channel) as Triton kernels (``training.first_conv``).

cuDNN runs the 1 -> 96, 4x4 convolution at about 1 TFLOP/s in a batch-64 training step on an
H100: 197 us of the 1,386-us graphed step for 0.1 % of its FLOPs, the step's plainest lever
(benchmarks/results/gpu/README.md). A matrix product of unfolded patches was slower still
(5bb3dcd): it moves the patches and the output several times. Here each direction is one kernel
that reads the image and the weights once and writes its result once:

- forward: each output pixel's 16 taps are summed in fp32, in tap order, and the sum is rounded
  to the output dtype; the bias is added and rounded again, as PyTorch adds it after cuDNN's
  convolution (so an evaluation or a walker that adds the bias itself gets the same values);
- backward: the weight and bias gradients as partial sums over blocks of pixels (a matrix
  product of the patches and the output's gradient per block), then summed in a fixed order:
  deterministic. The image's own gradient is PyTorch's (the data needs none).

In bf16 each product of two bf16 values is exact in fp32, so the forward sum is the same on the
GPU and in Triton's CPU interpreter (where the CPU tests run it); it may differ from cuDNN's sum,
taken in another order, in the last bit of a rounded output, and the gradients are summed in
another order: a result setting, like ``training.conv_bias``. The kernels are in
:mod:`hw5repro.first_conv_triton`.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from .eval_kernels import DTYPES, kernels_run_on

#: ``training.first_conv``: PyTorch's convolution, or these kernels on CUDA.
FIRST_CONV = ("torch", "triton")
BLOCK_PIXELS, BLOCK_CHANNELS = 64, 32
#: Programs over the pixels in the backward (a constant: the partial sums, and so the gradients,
#: are the same on every GPU).
BACKWARD_PROGRAMS = 256


@functools.cache
def _kernels():
    """The Triton kernels, imported on first use (Triton reads ``TRITON_INTERPRET`` then)."""
    import triton

    from . import first_conv_triton

    return triton, first_conv_triton.forward, first_conv_triton.backward


def _geometry(x: torch.Tensor, kernel_size) -> tuple[int, int, int]:
    kh, kw = kernel_size
    oh, ow = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    return x.shape[0] * oh * ow, oh, ow


def conv_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv2d(x, weight, bias)`` of a one-channel ``x`` (N, 1, H, W), no padding, stride 1,
    written channels_last in ``x``'s dtype (the dtype of ``weight`` and ``bias`` too)."""
    triton, kernel, _ = _kernels()
    c = weight.shape[0]
    p, oh, ow = _geometry(x, weight.shape[2:])
    y = torch.empty(
        (x.shape[0], c, oh, ow), dtype=x.dtype, device=x.device, memory_format=torch.channels_last
    )  # not a view: the ReLU after it works in place
    grid = (triton.cdiv(p, BLOCK_PIXELS), triton.cdiv(c, BLOCK_CHANNELS))
    kernel[grid](
        x, weight, weight if bias is None else bias, y, p, c, oh, ow,
        x.stride(0), x.stride(2), x.stride(3), weight.stride(0), weight.stride(2), weight.stride(3),
        *weight.shape[2:], bias is not None, x.dtype == torch.bfloat16,
        BLOCK_PIXELS, BLOCK_CHANNELS,
    )  # fmt: skip
    return y


def conv_backward(x: torch.Tensor, grad: torch.Tensor, kernel_size, channels: int):
    """The weight (C, 1, KH, KW) and bias (C,) gradients of :func:`conv_forward` in fp32, from the
    output's gradient ``grad``."""
    triton, _, kernel = _kernels()
    kh, kw = kernel_size
    p, oh, ow = _geometry(x, kernel_size)
    grad = grad.to(x.dtype).contiguous(memory_format=torch.channels_last)
    taps = max(16, triton.next_power_of_2(kh * kw + 1))  # and a constant 1 for the bias
    programs = min(BACKWARD_PROGRAMS, triton.cdiv(p, BLOCK_PIXELS))
    partial = x.new_empty((programs, taps, channels), dtype=torch.float32)
    grid = (programs, triton.cdiv(channels, BLOCK_CHANNELS))
    kernel[grid](
        x, grad, partial, p, channels, oh, ow, x.stride(0), x.stride(2), x.stride(3),
        kh, kw, taps, BLOCK_PIXELS, BLOCK_CHANNELS,
    )  # fmt: skip
    summed = partial.sum(0)
    return summed[: kh * kw].t().reshape(channels, 1, kh, kw), summed[kh * kw]


def taps_in_order(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """What :func:`conv_forward` computes, in PyTorch (slowly; the tests' reference): the taps
    summed in fp32 row by row of the kernel, rounded to ``x``'s dtype, then the bias added and
    rounded again."""
    kh, kw = weight.shape[2:]
    oh, ow = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    acc = x.new_zeros((x.shape[0], weight.shape[0], oh, ow), dtype=torch.float32)
    for i in range(kh):
        for j in range(kw):
            tap = x[:, :, i : i + oh, j : j + ow].float()
            acc = acc + tap * weight[:, 0, i, j].float().view(1, -1, 1, 1)
    out = acc.to(x.dtype)
    return out if bias is None else (out.float() + bias.float().view(1, -1, 1, 1)).to(x.dtype)


class _FirstConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return conv_forward(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad.to(weight.dtype))
        grad_w, grad_b = conv_backward(x, grad, weight.shape[2:], weight.shape[0])
        grad_b = grad_b.to(weight.dtype) if ctx.has_bias else None
        return grad_x, grad_w.to(weight.dtype), grad_b


def triton_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None):
    """:func:`conv_forward` with autograd (the gradients of :func:`conv_backward`); ``x``,
    ``weight`` and ``bias`` of one dtype."""
    return _FirstConv.apply(x, weight, bias)


class FirstConv2d(nn.Conv2d):
    """``nn.Conv2d`` (the same parameters and state dict keys) that, for a one-channel input
    without padding at stride 1 on CUDA (or in Triton's interpreter), runs the kernels of this
    module; anything else, and the CPU, runs PyTorch's convolution. Under autocast it computes in
    autocast's dtype, as PyTorch's convolution does."""

    def _conv_forward(self, x, weight, bias):
        if not (self._fits(x) and kernels_run_on(x)):
            return super()._conv_forward(x, weight, bias)
        dtype = x.dtype
        if torch.is_autocast_enabled(x.device.type):
            dtype = torch.get_autocast_dtype(x.device.type)
        if dtype not in DTYPES:
            return super()._conv_forward(x, weight, bias)
        bias = None if bias is None else bias.to(dtype)
        return triton_conv2d(x.to(dtype), weight.to(dtype), bias)

    def _fits(self, x: torch.Tensor) -> bool:
        return (
            x.dim() == 4
            and self.in_channels == 1
            and self.groups == 1
            and self.stride == (1, 1)
            and self.padding == (0, 0)
            and self.dilation == (1, 1)
        )


def first_conv_used(model: nn.Module, device: torch.device) -> str:
    """``triton`` where ``model`` has a :class:`FirstConv2d` and trains where the kernels run (CUDA;
    Triton's interpreter), else ``torch``: the CPU; a fused network's grouped convolution."""
    ours = any(isinstance(m, FirstConv2d) for m in model.modules())
    return "triton" if ours and kernels_run_on(device) else "torch"
