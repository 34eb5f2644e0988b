"""The Triton kernels of :mod:`hw5repro.first_conv` (imported only where Triton is installed).

A convolution of a one-channel image (no padding, stride 1) with a KH x KW kernel, as a matrix
of output pixels by output channels, written channels_last: each output is a sum over the
KH * KW taps, in fp32, in tap order (row by row of the kernel)."""

import triton
import triton.language as tl

from .eval_triton import rounded


@triton.jit
def forward(
    x_ptr, w_ptr, b_ptr, y_ptr, P, C, OH, OW, sxn, sxh, sxw, swc, swh, sww,
    KH: tl.constexpr, KW: tl.constexpr, HAS_BIAS: tl.constexpr, BF16: tl.constexpr,
    BP: tl.constexpr, BC: tl.constexpr,
):  # fmt: skip
    """y = conv(x, w), rounded to the output dtype, then (``HAS_BIAS``) + b rounded again, as
    PyTorch adds a bias after cuDNN's convolution; P output pixels (n, oh, ow) of C channels."""
    p = (tl.program_id(0) * BP + tl.arange(0, BP)).to(tl.int64)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    pm, cm = p < P, c < C
    n, r = p // (OH * OW), p % (OH * OW)
    corner = n * sxn + (r // OW) * sxh + (r % OW) * sxw  # the window's first input pixel
    acc = tl.full((BP, BC), 0.0, tl.float32)
    for kh in tl.static_range(KH):
        for kw in tl.static_range(KW):
            xv = tl.load(x_ptr + corner + kh * sxh + kw * sxw, mask=pm, other=0.0)
            wv = tl.load(w_ptr + c * swc + kh * swh + kw * sww, mask=cm, other=0.0)
            acc += xv.to(tl.float32)[:, None] * wv.to(tl.float32)[None, :]
    y = rounded(acc, BF16)
    if HAS_BIAS:
        b = tl.load(b_ptr + c, mask=cm, other=0.0).to(tl.float32)
        y = rounded(y.to(tl.float32) + b[None, :], BF16)
    tl.store(y_ptr + p[:, None] * C + c[None, :], y, mask=pm[:, None] & cm[None, :])


@triton.jit
def backward(
    x_ptr, g_ptr, gw_ptr, P, C, OH, OW, sxn, sxh, sxw,
    KH: tl.constexpr, KW: tl.constexpr, T: tl.constexpr, BP: tl.constexpr, BC: tl.constexpr,
):  # fmt: skip
    """The weight and bias gradients of :func:`forward` from the output's gradient g (channels
    last), as one matrix product per block of BP pixels: (T taps, BP) x (BP, BC channels), where
    tap KH * KW is a constant 1, whose row is then the bias gradient, and the other taps up to T
    (a power of two of at least 16, a matrix product's least side) are 0. Program s of S sums
    the blocks s, s + S, ... and writes its (T, C) partial sums at s; the caller sums them, in a
    fixed order. (Only Triton's builtins: its library functions, ``tl.zeros``, ``tl.sum``, do
    not run in the interpreter of a process that imported Triton before asking for it.)"""
    s, S = tl.program_id(0), tl.num_programs(0)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    t = tl.arange(0, T)
    cm, tm = c < C, t < KH * KW
    tap = (t // KW) * sxh + (t % KW) * sxw
    acc = tl.full((T, BC), 0.0, tl.float32)
    for start in range(s * BP, P, S * BP):
        p = (start + tl.arange(0, BP)).to(tl.int64)
        pm = p < P
        n, r = p // (OH * OW), p % (OH * OW)
        corner = n * sxn + (r // OW) * sxh + (r % OW) * sxw
        at = tap[:, None] + corner[None, :]
        patches = tl.load(x_ptr + at, mask=tm[:, None] & pm[None, :], other=0.0).to(tl.float32)
        patches = tl.where((t == KH * KW)[:, None] & pm[None, :], 1.0, patches)  # (T, BP)
        g = tl.load(g_ptr + p[:, None] * C + c[None, :], mask=pm[:, None] & cm[None, :], other=0.0)
        # in fp32 (each product of two bf16 values is exact there; Triton's interpreter
        # multiplies bf16 matrices wrongly)
        acc += tl.dot(patches, g.to(tl.float32), input_precision="ieee")
    at = (s * T + t[:, None]) * C + c[None, :]
    tl.store(gw_ptr + at, acc, mask=(t <= KH * KW)[:, None] & cm[None, :])
