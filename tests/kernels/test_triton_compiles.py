"""Every Triton kernel of the project compiles for an H100 (sm_90) with the arguments its
wrapper gives it, in bf16 and fp32: Triton compiles to a GPU binary without a GPU (its own
ptxas), so a kernel that Triton's interpreter runs (the other kernel tests) but the compiler
rejects fails here, not on a lent GPU."""

from __future__ import annotations

import importlib
import inspect

import pytest

from helpers import TRITON_KERNELS

#: Kernel -> its compile-time constants beyond the block sizes and the dtype flag.
KERNELS = {
    "bias_relu": {},
    "pool_bias_relu": {"KEEP_ARG": True},
    "relu_grad": {},
    "pool_grad": {},
}
#: Pointers that are not of the activations' dtype.
POINTERS = {"gw_ptr": "*fp32", "part_ptr": "*fp32", "arg_ptr": "*i8"}


@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_compiles_for_an_h100(compiled, name, dtype):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    ((module, wrapper_name),) = TRITON_KERNELS.items()
    wrapper = importlib.import_module(f"hw5repro.{wrapper_name}")
    kernel = getattr(importlib.import_module(f"hw5repro.{module}"), name)
    constants = KERNELS[name] | {"BP": wrapper.BLOCK_PIXELS, "BC": wrapper.BLOCK_CHANNELS}
    constants |= {"BF16": dtype == "bf16"}
    params = list(inspect.signature(kernel.fn).parameters)
    constants = {k: v for k, v in constants.items() if k in params}
    signature = {
        p: "constexpr"
        if p in constants
        else POINTERS.get(p, f"*{dtype}")
        if p.endswith("_ptr")
        else "i32"
        for p in params
    }
    binary = triton.compile(
        ASTSource(kernel, signature, constexprs=constants), target=GPUTarget("cuda", 90, 32)
    )
    assert binary.name == name and len(binary.asm["cubin"]) > 1000
