"""Training's passes between the convolutions as Triton kernels (``training.conv_bias: triton``).

In a training step PyTorch runs, after each convolution, the bias add, the ReLU and (twice) the
max-pool, and in the backward the ReLU's gradient, the bias gradient's reduction and the
max-pool's gradient, each a pass of its own over the activations; the max-pool keeps int64
indices. Here each convolution's epilogue is one autograd function of two or three kernels:

- ``relu(out + bias)``: forward the evaluation's kernel (:func:`hw5repro.eval_kernels.bias_relu`);
  backward one kernel for the ReLU's gradient and partial sums of the bias gradient;
- ``relu(maxpool3x3/2(out) + bias)``: forward the evaluation's kernel, keeping each max's place
  in its window as int8 (:func:`hw5repro.eval_kernels.pool_bias_relu_argmax`); backward the
  ReLU kernel, then one that gathers the pool's gradient.

The values are those of ``conv_bias: after_pool`` (the bias after the pool; rounding is monotone),
bit for bit: the forward; the ReLU's gradient; the max-pool's gradient, gathered in PyTorch's
order (windows by row, then column) in fp32 and rounded once, with PyTorch's choice of the max
(the first largest value; NaN wins). Only the bias gradient is summed in another order (fp32
partial sums per block of pixels, added in a fixed order: deterministic). The kernels are in
:mod:`hw5repro.train_epilogues_triton`; the CPU tests run them in Triton's interpreter against
PyTorch's autograd.
"""

from __future__ import annotations

import functools

import torch

from . import eval_kernels

BLOCK_PIXELS, BLOCK_CHANNELS = eval_kernels.BLOCK_PIXELS, eval_kernels.BLOCK_CHANNELS
#: Programs over the pixels in a bias gradient's partial sums (a constant: the sums, and so the
#: gradients, are the same on every GPU).
SUM_PROGRAMS = 256


@functools.cache
def _kernels():
    """The Triton kernels, imported on first use (Triton reads ``TRITON_INTERPRET`` then)."""
    import triton

    from . import train_epilogues_triton as k

    return triton, k.relu_grad, k.pool_grad


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def relu_grad(grad: torch.Tensor, y: torch.Tensor):
    """The gradient through a ReLU whose output is ``y`` (0 where y <= 0), and its sum over the
    pixels per channel in fp32 (the gradient of a bias added before the ReLU)."""
    triton, kernel, _ = _kernels()
    n, c, h, w = y.shape
    grad = _channels_last(grad.to(y.dtype))
    gx = torch.empty_like(y, memory_format=torch.channels_last)
    programs = min(SUM_PROGRAMS, triton.cdiv(n * h * w, BLOCK_PIXELS))
    partial = y.new_empty((programs, c), dtype=torch.float32)
    grid = (programs, triton.cdiv(c, BLOCK_CHANNELS))
    kernel[grid](grad, y, gx, partial, n * h * w, c, BLOCK_PIXELS, BLOCK_CHANNELS)
    return gx, partial.sum(0)


def pool_grad(grad: torch.Tensor, arg: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """The 3x3/2 max-pool's input gradient (``size``, channels_last) from its output's gradient
    and :func:`~hw5repro.eval_kernels.pool_bias_relu_argmax`'s places of the maxima."""
    triton, _, kernel = _kernels()
    n, c, h, w = size
    gx = torch.empty(size, dtype=grad.dtype, device=grad.device, memory_format=torch.channels_last)
    grid = (triton.cdiv(n * h * w, BLOCK_PIXELS), triton.cdiv(c, BLOCK_CHANNELS))
    bf16 = grad.dtype == torch.bfloat16
    kernel[grid](
        grad, arg, gx, n * h * w, c, h, w, arg.shape[2], arg.shape[3],
        bf16, BLOCK_PIXELS, BLOCK_CHANNELS,
    )  # fmt: skip
    return gx


class _BiasReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, out, bias):
        y = eval_kernels.bias_relu(out, bias)
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
        y, arg = eval_kernels.pool_bias_relu_argmax(out, bias)
        ctx.save_for_backward(y, arg)
        ctx.size = out.shape
        return y

    @staticmethod
    def backward(ctx, grad):
        y, arg = ctx.saved_tensors
        g, gb = relu_grad(grad, y)
        return pool_grad(g, arg, ctx.size), gb.to(y.dtype)


def bias_relu(out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``relu(out + bias)`` of a channels_last ``out`` with autograd (the bias in ``out``'s
    dtype, as autocast gives it to a convolution)."""
    return _BiasReLU.apply(out, bias.to(out.dtype))


def pool_bias_relu(out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``relu(max_pool2d(out, 3, 2) + bias)`` of a channels_last ``out`` with autograd."""
    return _PoolBiasReLU.apply(out, bias.to(out.dtype))
