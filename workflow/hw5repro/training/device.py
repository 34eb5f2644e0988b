"""The device a run trains on: its choice, its algorithms, its name and software versions."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

import torch

#: A cuBLAS workspace setting that PyTorch's deterministic mode asks for on CUDA.
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


class DeviceError(RuntimeError):
    """The configured device is not available."""


#: Variables through which a scheduler hands a job its GPUs.
ALLOCATION_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_GPUS", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS")
#: Values that allocate no GPU (SLURM writes ``NoDevFiles`` for a job without GPUs).
NO_ALLOCATION = {"", "NoDevFiles", "-1", "none"}


class GpuAllocationError(DeviceError):
    """A GPU was allocated to the job but PyTorch cannot use it (``auto`` would use the CPU)."""


def allocated_gpus(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The allocation variables that name GPUs, with their values."""
    return {
        name: environ[name]
        for name in ALLOCATION_VARIABLES
        if environ.get(name, "").strip() not in NO_ALLOCATION
    }


def torch_report() -> str:
    """What PyTorch says about CUDA, with the driver's error of initialising it if any."""
    available = torch.cuda.is_available()
    parts = [
        f"torch.cuda.is_available() is {available}",
        f"torch.cuda.device_count() is {torch.cuda.device_count()}",
        f"torch.version.cuda is {torch.version.cuda}",
    ]
    if not available:
        try:
            torch.cuda.init()
        except Exception as error:
            first = (str(error).splitlines() or [type(error).__name__])[0]
            parts.append(f"CUDA initialisation failed: {first}")
    return "; ".join(parts)


def check_allocated_gpu(environ: Mapping[str, str] = os.environ) -> None:
    """Raise :class:`GpuAllocationError` if the job was allocated a GPU PyTorch cannot use."""
    allocation = allocated_gpus(environ)
    if not allocation or torch.cuda.is_available():
        return
    given = ", ".join(f"{name}={value}" for name, value in allocation.items())
    raise GpuAllocationError(
        f"this job was allocated a GPU ({given}) but PyTorch cannot use it: "
        f"{torch_report()}. Check the node's NVIDIA driver and that PyTorch is a CUDA "
        "build; to train on the CPU on purpose, set training.device: cpu"
    )


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda``/``cuda:N`` must exist."""
    if spec == "auto":
        check_allocated_gpu()
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"training.device is {spec!r} but no CUDA device is available "
                "(torch.cuda.is_available() is False); use 'auto' or 'cpu'"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"training.device is {spec!r} but only {torch.cuda.device_count()} "
                "CUDA device(s) are visible"
            )
    return device


def select_algorithms(device: torch.device, deterministic: bool) -> None:
    """``training.deterministic``, process-wide: True makes reruns on the same GPU and software
    reproduce every metric (as a CPU run always does); False lets cuDNN autotune."""
    if torch.are_deterministic_algorithms_enabled() != bool(deterministic):
        # Only on a change: the call imports torch._inductor's config, and with it torch._dynamo.
        torch.use_deterministic_algorithms(bool(deterministic))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)


def software(device: torch.device) -> dict[str, str | None]:
    """Versions of PyTorch and, on CUDA, its CUDA, cuDNN and Triton; None where not applicable."""
    from importlib import metadata

    on_cuda = device.type == "cuda"
    triton = None
    for distribution in ("triton", "pytorch-triton") if on_cuda else ():  # (nightlies: the latter)
        with contextlib.suppress(metadata.PackageNotFoundError):
            triton = metadata.version(distribution)
            break
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda if on_cuda else None,
        "cudnn": torch.backends.cudnn.version() if on_cuda else None,
        "triton": triton,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "cpu"
