"""The device a run trains on: its choice from the configuration (with clear errors), the
algorithms it uses, and its name and software versions for the records."""

from __future__ import annotations

import os

import torch

from ..pipeline.gpu_check import check_allocated_gpu

#: cuBLAS's workspace setting that PyTorch's deterministic mode asks for on CUDA (one of two).
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


class DeviceError(RuntimeError):
    """The configured device is not available."""


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda``/``cuda:N`` must exist."""
    if spec == "auto":
        check_allocated_gpu()  # a GPU allocated to the job but unusable fails here
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
    """The algorithms this process trains with (``training.deterministic``; process-wide, set by
    every training call). False: on CUDA cuDNN times its algorithms for each shape and keeps the
    fastest (``cudnn.benchmark``), whose choice, and some of whose backward kernels (atomic
    sums), can differ from one run to the next in the last bits, which SGD amplifies. True:
    PyTorch's deterministic algorithms (an operation without one raises an error naming it), no
    autotuning, and cuBLAS with a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``; set here before
    the first matrix product, unless the environment sets it): a rerun on the same GPU and
    software reproduces every metric. The project's Triton kernels are deterministic either way.
    On a CPU the runs are deterministic either way (for a given thread count)."""
    if torch.are_deterministic_algorithms_enabled() != bool(deterministic):
        # Only on a change: the call imports torch._inductor's config, and with it
        # torch._dynamo (about 2 s of every training job's start on a 2-core CPU).
        torch.use_deterministic_algorithms(bool(deterministic))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)


def software(device: torch.device) -> dict[str, str | None]:
    """The versions of what computes a run on ``device`` beside the hardware: PyTorch, and on
    CUDA its CUDA runtime, cuDNN (whose autotuned algorithms the runs use) and Triton (the
    kernels of conv_epilogue: triton); None where it does not apply."""
    from importlib import metadata

    on_cuda = device.type == "cuda"
    triton = None
    for distribution in ("triton", "pytorch-triton") if on_cuda else ():  # (nightlies: the latter)
        try:
            triton = metadata.version(distribution)
            break
        except metadata.PackageNotFoundError:
            pass
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
