"""A job that was allocated a GPU but where PyTorch sees none fails at once, saying why.

With ``training.device: auto`` a node without a usable GPU trains on the CPU. That is right on a
laptop, but on a GPU node it means a broken driver, a CPU-only PyTorch or a container without the
GPU: hours on the CPU where minutes were asked for. So where the scheduler allocated a GPU
(``CUDA_VISIBLE_DEVICES`` or ``SLURM_GPUS`` set and not empty) and PyTorch cannot use one,
:func:`check_allocated_gpu` raises :class:`GpuAllocationError` naming the allocation and what
PyTorch reported; ``training.device: cpu`` asks for the CPU and skips the check.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: Variables through which a scheduler hands a job its GPUs.
ALLOCATION_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_GPUS", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS")
#: Values that allocate no GPU (SLURM writes ``NoDevFiles`` for a job without GPUs).
NO_ALLOCATION = {"", "NoDevFiles", "-1", "none"}


class GpuAllocationError(RuntimeError):
    """A GPU was allocated to the job but PyTorch cannot use it."""


def allocated_gpus(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The allocation variables that name GPUs, with their values."""
    return {
        name: environ[name]
        for name in ALLOCATION_VARIABLES
        if environ.get(name, "").strip() not in NO_ALLOCATION
    }


def torch_report(torch) -> str:
    """What PyTorch says about CUDA: availability, device count, its CUDA version, and the error
    of initialising CUDA if any (the driver's message)."""
    available = torch.cuda.is_available()
    parts = [
        f"torch.cuda.is_available() is {available}",
        f"torch.cuda.device_count() is {torch.cuda.device_count()}",
        f"torch.version.cuda is {torch.version.cuda}",
    ]
    if not available:
        try:
            torch.cuda.init()
        except Exception as error:  # the driver's or the build's own words
            first = (str(error).splitlines() or [type(error).__name__])[0]
            parts.append(f"CUDA initialisation failed: {first}")
    return "; ".join(parts)


def check_allocated_gpu(environ: Mapping[str, str] = os.environ, torch=None) -> None:
    """Raise :class:`GpuAllocationError` if the job was allocated a GPU that PyTorch cannot use
    (called where ``training.device: auto`` would fall back to the CPU)."""
    allocation = allocated_gpus(environ)
    if not allocation:
        return
    if torch is None:
        import torch
    if torch.cuda.is_available():
        return
    given = ", ".join(f"{name}={value}" for name, value in allocation.items())
    raise GpuAllocationError(
        f"this job was allocated a GPU ({given}) but PyTorch cannot use it: "
        f"{torch_report(torch)}. Check the node's NVIDIA driver and that PyTorch is a CUDA "
        "build; to train on the CPU on purpose, set training.device: cpu"
    )
