"""Every Triton kernel of the project compiles for an H100 (sm_90) with the arguments its
wrapper gives it, in bf16 and fp32: Triton compiles to a GPU binary without a GPU (its own
ptxas), so a kernel that Triton's interpreter runs (the other kernel tests) but the compiler
rejects fails here, not on a lent GPU."""

from __future__ import annotations

import importlib
import inspect

import pytest

from conftest import TRITON_KERNELS

#: Kernel -> its compile-time constants beyond the block sizes and the dtype flag.
KERNELS = {
    "eval_triton.bias_relu": {},
    "eval_triton.pool_bias_relu": {"KEEP_ARG": True},
    "first_conv_triton.forward": {"KH": 4, "KW": 4, "HAS_BIAS": True},
    "first_conv_triton.backward": {"KH": 4, "KW": 4, "T": 32},
    "train_epilogues_triton.relu_grad": {},
    "train_epilogues_triton.pool_grad": {},
}
#: Pointers that are not of the activations' dtype.
POINTERS = {"gw_ptr": "*fp32", "part_ptr": "*fp32", "arg_ptr": "*i8"}


@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_compiles_for_an_h100(compiled, name, dtype):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    module, kernel_name = name.split(".")
    wrapper = importlib.import_module(f"hw5repro.{TRITON_KERNELS[module]}")
    kernel = getattr(importlib.import_module(f"hw5repro.{module}"), kernel_name)
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
    assert binary.name == kernel_name and len(binary.asm["cubin"]) > 1000
