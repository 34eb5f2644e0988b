"""The Triton kernels of :mod:`hw5repro.eval_kernels` (imported only where Triton is installed).

Both read a channels_last activation as a (pixels, channels) matrix, in blocks of BP pixels by BC
channels, add the bias in fp32 and round once to the output dtype."""

import triton
import triton.language as tl


@triton.jit
def rounded(v, BF16: tl.constexpr):
    """fp32 ``v`` rounded to the nearest bf16, ties to even (``BF16``), else unchanged."""
    if BF16:
        bits = v.to(tl.uint32, bitcast=True)
        bits = bits + 0x7FFF + ((bits >> 16) & 1)
        v = (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    return v


@triton.jit
def bias_relu(x_ptr, b_ptr, y_ptr, P, C, BF16: tl.constexpr, BP: tl.constexpr, BC: tl.constexpr):
    """y = relu(x + b) over P pixels of C channels."""
    p = (tl.program_id(0) * BP + tl.arange(0, BP)).to(tl.int64)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    mask = (p < P)[:, None] & (c < C)[None, :]
    at = p[:, None] * C + c[None, :]
    x = tl.load(x_ptr + at, mask=mask).to(tl.float32)
    b = tl.load(b_ptr + c, mask=c < C).to(tl.float32)
    y = tl.maximum(x + b[None, :], 0.0, propagate_nan=tl.PropagateNan.ALL)
    tl.store(y_ptr + at, rounded(y, BF16), mask=mask)


@triton.jit
def pool_bias_relu(
    x_ptr, b_ptr, y_ptr, arg_ptr, P, C, H, W, OH, OW,
    KEEP_ARG: tl.constexpr, BF16: tl.constexpr, BP: tl.constexpr, BC: tl.constexpr,
):  # fmt: skip
    """y = relu(max over the 3x3 window at stride 2 of x, + b) for P output pixels (n, oh, ow)
    of an H x W input; with ``KEEP_ARG`` (training's backward needs it) also the max's place in
    its window (0-8, row by row) as int8: the first largest value, or the last NaN, as PyTorch's
    max-pool picks it (a NaN, once taken, stays the max)."""
    p = (tl.program_id(0) * BP + tl.arange(0, BP)).to(tl.int64)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    mask = (p < P)[:, None] & (c < C)[None, :]
    n, r = p // (OH * OW), p % (OH * OW)
    corner = (n * H + (r // OW) * 2) * W + (r % OW) * 2  # the window's first input pixel
    m = tl.full((BP, BC), float("-inf"), tl.float32)
    arg = tl.full((BP, BC), 0, tl.int32)
    for dh in tl.static_range(3):
        for dw in tl.static_range(3):
            at = (corner + dh * W + dw)[:, None] * C + c[None, :]
            x = tl.load(x_ptr + at, mask=mask, other=float("-inf")).to(tl.float32)
            take = (x > m) | (x != x)
            m = tl.where(take, x, m)
            arg = tl.where(take, dh * 3 + dw, arg)
    b = tl.load(b_ptr + c, mask=c < C).to(tl.float32)
    y = tl.maximum(m + b[None, :], 0.0, propagate_nan=tl.PropagateNan.ALL)
    out = p[:, None] * C + c[None, :]
    tl.store(y_ptr + out, rounded(y, BF16), mask=mask)
    if KEEP_ARG:
        tl.store(arg_ptr + out, arg.to(tl.int8), mask=mask)
