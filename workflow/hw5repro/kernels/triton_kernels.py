"""The Triton kernels of :mod:`hw5repro.kernels.epilogues` (imported only where Triton is).

A channels_last activation is read as a (pixels, channels) matrix in blocks of BP x BC, computed
in fp32 and rounded once to the output dtype. Sums over pixels are partial sums per program
(program s of S takes blocks s, s + S, ...), added by the caller in a fixed order. Only Triton's
builtins are used: its library functions (``tl.sum``, ``tl.zeros``) do not run in the interpreter
of a process that imported Triton before asking for the interpreter (the CPU tests)."""

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
    """y = relu(max of x over the 3x3/2 window + b) for P output pixels (n, oh, ow) of an H x W
    input; with ``KEEP_ARG`` also the max's place in its window (int8, 0-8 row by row) as
    PyTorch's max-pool picks it: the first largest value, or the last NaN."""
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


@triton.jit
def add(a, b):
    return a + b


@triton.jit
def relu_grad(
    g_ptr, y_ptr, gx_ptr, part_ptr, P, C, BP: tl.constexpr, BC: tl.constexpr,
):  # fmt: skip
    """gx = g where the ReLU's output y > 0, else 0 (as threshold_backward), and its fp32 partial
    sums over the pixels (the bias gradient)."""
    s, S = tl.program_id(0), tl.num_programs(0)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    acc = tl.full((BC,), 0.0, tl.float32)
    for start in range(s * BP, P, S * BP):
        p = (start + tl.arange(0, BP)).to(tl.int64)
        mask = (p < P)[:, None] & (c < C)[None, :]
        at = p[:, None] * C + c[None, :]
        g = tl.load(g_ptr + at, mask=mask, other=0.0)
        y = tl.load(y_ptr + at, mask=mask, other=0.0)
        gx = tl.where(y <= 0, 0.0, g.to(tl.float32)).to(g.dtype)
        tl.store(gx_ptr + at, gx, mask=mask)
        acc += tl.reduce(gx.to(tl.float32), 0, add)
    tl.store(part_ptr + s * C + c, acc, mask=c < C)


@triton.jit
def pool_grad(
    g_ptr, arg_ptr, gx_ptr, P, C, H, W, OH, OW,
    BF16: tl.constexpr, BP: tl.constexpr, BC: tl.constexpr,
):  # fmt: skip
    """The max-pool's input gradient gx over P input pixels (n, ih, iw), as PyTorch gathers it:
    the fp32 sum, in window order, of g over the (at most 2 x 2) windows whose max is this pixel,
    rounded once."""
    p = (tl.program_id(0) * BP + tl.arange(0, BP)).to(tl.int64)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    pm, cm = p < P, c < C
    n, r = p // (H * W), p % (H * W)
    ih, iw = r // W, r % W
    acc = tl.full((BP, BC), 0.0, tl.float32)
    for a in tl.static_range(2):  # window rows ih // 2 - 1 and ih // 2, where they hold ih
        oh = ih // 2 - 1 + a
        row_ok = (oh >= 0) & (oh < OH) & (ih - 2 * oh <= 2)
        for b in tl.static_range(2):
            ow = iw // 2 - 1 + b
            ok = pm & row_ok & (ow >= 0) & (ow < OW) & (iw - 2 * ow <= 2)
            at = ((n * OH + oh) * OW + ow)[:, None] * C + c[None, :]
            m = ok[:, None] & cm[None, :]
            arg = tl.load(arg_ptr + at, mask=m, other=-1).to(tl.int32)
            g = tl.load(g_ptr + at, mask=m, other=0.0).to(tl.float32)
            here = ((ih - 2 * oh) * 3 + (iw - 2 * ow)).to(tl.int32)
            acc += tl.where(arg == here[:, None], g, 0.0)
    tl.store(
        gx_ptr + p[:, None] * C + c[None, :], rounded(acc, BF16), mask=pm[:, None] & cm[None, :]
    )
