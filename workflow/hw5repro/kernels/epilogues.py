"""Each convolution's epilogue (bias, ReLU and the 3x3/2 max-pool) as Triton kernels
(``training.conv_epilogue: triton``): one kernel over the channels_last output forward
(``relu(out + bias)`` or ``relu(maxpool(out) + bias)``) and, with autograd, one autograd function
whose backward is one or two kernels; without autograd no max places are kept.

The values are PyTorch's bit for bit: the sum is taken in fp32 and rounded once to the output
dtype (round to nearest even, written out so that Triton's CPU interpreter rounds like the GPU);
adding the bias after the pool is exact because rounding is monotone
(``max(round(x + b)) == round(max(x) + b)``); ReLU and rounding commute; NaN propagates as in
PyTorch; the pool's gradient is gathered in PyTorch's order with its choice of the max (the first
largest value). Only the bias gradient is summed in another, fixed order (deterministic).
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import nn

#: Output dtypes the kernels write; others take PyTorch's passes.
DTYPES = (torch.float32, torch.bfloat16)
BLOCK_PIXELS, BLOCK_CHANNELS = 32, 64
#: Programs of a bias gradient's partial sums over the pixels (fixed: the same sums on every GPU).
SUM_PROGRAMS = 256


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _kernels():
    """Triton and :mod:`.triton_kernels`, imported on first use (after ``TRITON_INTERPRET``)."""
    import triton

    from . import triton_kernels

    return triton, triton_kernels


def kernels_run_on(x: torch.Tensor | torch.device) -> bool:
    """Whether the kernels run on ``x`` (tensor or device): CUDA, or any in Triton's interpreter."""
    device = x if isinstance(x, torch.device) else x.device
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


def _fits(out: torch.Tensor) -> bool:
    return out.dtype in DTYPES and out.is_contiguous(memory_format=torch.channels_last)


def eval_bias_relu(out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``relu(out + bias)`` per channel of a channels_last ``out``, in one pass (no autograd)."""
    triton, kernels = _kernels()
    n, c, h, w = out.shape
    y = torch.empty_like(out, memory_format=torch.channels_last)
    grid = (triton.cdiv(n * h * w, BLOCK_PIXELS), triton.cdiv(c, BLOCK_CHANNELS))
    bf16 = out.dtype == torch.bfloat16
    kernels.bias_relu[grid](
        out, bias.to(out.dtype), y, n * h * w, c, bf16, BLOCK_PIXELS, BLOCK_CHANNELS
    )
    return y


def _pool(out: torch.Tensor, bias: torch.Tensor, keep_arg: bool):
    triton, kernels = _kernels()
    n, c, h, w = out.shape
    oh, ow = (h - 3) // 2 + 1, (w - 3) // 2 + 1
    y = torch.empty(
        (n, c, oh, ow), dtype=out.dtype, device=out.device, memory_format=torch.channels_last
    )
    arg = torch.empty_like(y, dtype=torch.int8) if keep_arg else None
    grid = (triton.cdiv(n * oh * ow, BLOCK_PIXELS), triton.cdiv(c, BLOCK_CHANNELS))
    bf16 = out.dtype == torch.bfloat16
    kernels.pool_bias_relu[grid](
        out, bias.to(out.dtype), y, y if arg is None else arg, n * oh * ow, c, h, w, oh, ow,
        keep_arg, bf16, BLOCK_PIXELS, BLOCK_CHANNELS,
    )  # fmt: skip
    return y, arg


def eval_pool_bias_relu(out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``relu(max_pool2d(out + bias, 3, 2))`` of a channels_last ``out``, in one pass."""
    return _pool(out, bias, keep_arg=False)[0]


def pool_bias_relu_argmax(out: torch.Tensor, bias: torch.Tensor):
    """:func:`eval_pool_bias_relu` and each max's place in its window (int8, 0-8), for backward."""
    return _pool(out, bias, keep_arg=True)


def _is_pool(layer: nn.Module) -> bool:
    """A 3x3/2 max-pool without padding, the kind :func:`pool_bias_relu` computes."""
    return (
        isinstance(layer, nn.MaxPool2d)
        and layer.kernel_size in (3, (3, 3))
        and layer.stride in (2, (2, 2))
        and layer.padding in (0, (0, 0))
        and layer.dilation in (1, (1, 1))
        and not layer.ceil_mode
    )


def forward_fused_epilogues(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``layers(x)`` with the epilogue of every convolution followed by a ReLU, or by a 3x3/2
    max-pool and a ReLU, run by the kernels (as autograd functions when grad is enabled); other
    layers, and outputs the kernels do not take (dtype, layout), as PyTorch runs them."""
    if torch.is_grad_enabled():
        relu_epilogue, pool_epilogue = bias_relu, pool_bias_relu
    else:
        relu_epilogue, pool_epilogue = eval_bias_relu, eval_pool_bias_relu
    layers, i = list(layers), 0
    while i < len(layers):
        layer, after = layers[i], layers[i + 1 : i + 3]
        pooled = len(after) == 2 and _is_pool(after[0]) and isinstance(after[1], nn.ReLU)
        relu = len(after) >= 1 and isinstance(after[0], nn.ReLU)
        if isinstance(layer, nn.Conv2d) and layer.bias is not None and (pooled or relu):
            out = layer._conv_forward(x, layer.weight, None)
            if _fits(out):
                x = (pool_epilogue if pooled else relu_epilogue)(out, layer.bias)
            else:
                out = out + layer.bias.to(out.dtype).view(1, -1, 1, 1)
                x = F.relu(F.max_pool2d(out, 3, 2) if pooled else out)
            i += 3 if pooled else 2
        else:
            x = layer(x)
            i += 1
    return x


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def relu_grad(grad: torch.Tensor, y: torch.Tensor):
    """The gradient through a ReLU of output ``y``, and its fp32 sum per channel (the bias's)."""
    triton, kernels = _kernels()
    n, c, h, w = y.shape
    grad = _channels_last(grad.to(y.dtype))
    gx = torch.empty_like(y, memory_format=torch.channels_last)
    programs = min(SUM_PROGRAMS, triton.cdiv(n * h * w, BLOCK_PIXELS))
    partial = y.new_empty((programs, c), dtype=torch.float32)
    grid = (programs, triton.cdiv(c, BLOCK_CHANNELS))
    kernels.relu_grad[grid](grad, y, gx, partial, n * h * w, c, BLOCK_PIXELS, BLOCK_CHANNELS)
    return gx, partial.sum(0)


def pool_grad(grad: torch.Tensor, arg: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """The 3x3/2 max-pool's input gradient (``size``, channels_last) from the places ``arg``."""
    triton, kernels = _kernels()
    n, c, h, w = size
    gx = torch.empty(size, dtype=grad.dtype, device=grad.device, memory_format=torch.channels_last)
    grid = (triton.cdiv(n * h * w, BLOCK_PIXELS), triton.cdiv(c, BLOCK_CHANNELS))
    bf16 = grad.dtype == torch.bfloat16
    kernels.pool_grad[grid](
        grad, arg, gx, n * h * w, c, h, w, arg.shape[2], arg.shape[3],
        bf16, BLOCK_PIXELS, BLOCK_CHANNELS,
    )  # fmt: skip
    return gx


class _BiasReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, out, bias):
        y = eval_bias_relu(out, bias)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        gx, gb = relu_grad(grad, y)
        return gx, gb.to(y.dtype)


class _PoolBiasReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, out, bias):
        y, arg = pool_bias_relu_argmax(out, bias)
        ctx.save_for_backward(y, arg)
        ctx.size = out.shape
        return y

    @staticmethod
    def backward(ctx, grad):
        y, arg = ctx.saved_tensors
        g, gb = relu_grad(grad, y)
        return pool_grad(g, arg, ctx.size), gb.to(y.dtype)


def bias_relu(out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``relu(out + bias)`` of a channels_last ``out`` with autograd (bias in ``out``'s dtype)."""
    return _BiasReLU.apply(out, bias.to(out.dtype))


def pool_bias_relu(out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``relu(max_pool2d(out, 3, 2) + bias)`` of a channels_last ``out`` with autograd."""
    return _PoolBiasReLU.apply(out, bias.to(out.dtype))
