"""Evaluation's passes between the convolutions as fused Triton kernels (``training.triton_eval``).

After each cuDNN convolution PyTorch runs the bias add, then the ReLU (and after the third and
sixth convolution the 3x3/2 max-pool, which on CUDA writes int64 indices even without autograd)
as separate passes over the activations: on an H100 about half of the evaluation's time
(benchmarks/results/gpu/README.md). Here each convolution's epilogue is one kernel over its
channels_last output: ``relu(out + bias)``, or ``relu(maxpool(out) + bias)``.

They compute what PyTorch computes, bit for bit: the sum is taken in fp32 and rounded once to the
output dtype (round to nearest even, written out so that Triton's CPU interpreter rounds like the
GPU), as PyTorch's add does; the bias is added after the pool, which gives the same values because
rounding is monotone (``max(round(x + b)) == round(max(x) + b)``); ReLU and rounding commute; NaN
propagates through the max and the ReLU as in PyTorch. Evaluation keeps no indices and has no
backward; training's autograd functions (:mod:`hw5repro.train_epilogues`) run the same forward
kernels, the pooled one keeping each max's place as int8. The kernels are in
:mod:`hw5repro.eval_triton`; the CPU tests run them in Triton's interpreter
(``TRITON_INTERPRET=1``).
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


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _kernels():
    """The Triton kernels (:mod:`hw5repro.eval_triton`), imported on first use: Triton reads
    ``TRITON_INTERPRET`` when it defines them."""
    import triton

    from . import eval_triton

    return triton, eval_triton.bias_relu, eval_triton.pool_bias_relu


def kernels_run_on(x: torch.Tensor | torch.device) -> bool:
    """Whether the kernels take ``x``'s device (or ``x``, a device): CUDA, or any device in
    Triton's interpreter."""
    device = x if isinstance(x, torch.device) else x.device
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


def _fits(out: torch.Tensor) -> bool:
    return out.dtype in DTYPES and out.is_contiguous(memory_format=torch.channels_last)


def bias_relu(out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``relu(out + bias)`` per channel of a channels_last ``out``, in one pass."""
    triton, kernel, _ = _kernels()
    n, c, h, w = out.shape
    y = torch.empty_like(out, memory_format=torch.channels_last)
    grid = (triton.cdiv(n * h * w, BLOCK_PIXELS), triton.cdiv(c, BLOCK_CHANNELS))
    bf16 = out.dtype == torch.bfloat16
    kernel[grid](out, bias.to(out.dtype), y, n * h * w, c, bf16, BLOCK_PIXELS, BLOCK_CHANNELS)
    return y


def _pool(out: torch.Tensor, bias: torch.Tensor, keep_arg: bool):
    triton, _, kernel = _kernels()
    n, c, h, w = out.shape
    oh, ow = (h - 3) // 2 + 1, (w - 3) // 2 + 1
    y = torch.empty(
        (n, c, oh, ow), dtype=out.dtype, device=out.device, memory_format=torch.channels_last
    )
    arg = torch.empty_like(y, dtype=torch.int8) if keep_arg else None
    grid = (triton.cdiv(n * oh * ow, BLOCK_PIXELS), triton.cdiv(c, BLOCK_CHANNELS))
    bf16 = out.dtype == torch.bfloat16
    kernel[grid](
        out, bias.to(out.dtype), y, y if arg is None else arg, n * oh * ow, c, h, w, oh, ow,
        keep_arg, bf16, BLOCK_PIXELS, BLOCK_CHANNELS,
    )  # fmt: skip
    return y, arg


def pool_bias_relu(out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``relu(max_pool2d(out + bias, 3, 2))`` of a channels_last ``out``, in one pass."""
    return _pool(out, bias, keep_arg=False)[0]


def pool_bias_relu_argmax(out: torch.Tensor, bias: torch.Tensor):
    """:func:`pool_bias_relu`, and each max's place in its 3x3 window (int8, 0-8, as PyTorch's
    max-pool picks it: the first largest value), which its gradient needs."""
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
    """``layers(x)`` with every convolution followed by a ReLU, or by a 3x3/2 max-pool and a
    ReLU, running that epilogue as one kernel (without autograd), or as the autograd functions
    of :mod:`hw5repro.train_epilogues` (with); layers of other patterns, and outputs the kernels
    do not take (dtype, layout), as PyTorch runs them."""
    if torch.is_grad_enabled():
        from .train_epilogues import bias_relu as relu_epilogue
        from .train_epilogues import pool_bias_relu as pool_epilogue
    else:
        relu_epilogue, pool_epilogue = bias_relu, pool_bias_relu
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
