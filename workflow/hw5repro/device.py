"""Choice of device and numeric precision from configuration, with clear errors."""

from __future__ import annotations

import os
from dataclasses import replace

import torch

from .pipeline.gpu_check import check_allocated_gpu

#: cuBLAS's workspace setting that PyTorch's deterministic mode asks for on CUDA (one of two).
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


class DeviceError(RuntimeError):
    """The configured device is not available."""


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU (unless a GPU was allocated to the job:
    :func:`hw5repro.pipeline.gpu_check.check_allocated_gpu`); ``cuda``/``cuda:N`` must exist."""
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


def resolve_precision(spec: str, device: torch.device) -> str:
    """``auto`` -> bf16 autocast on GPUs that support it, fp32 otherwise."""
    if spec == "auto":
        bf16_ok = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return "bf16" if bf16_ok else "fp32"
    return spec


def resolve_channels_last(spec, device: torch.device) -> bool:
    """``auto`` -> channels_last on CUDA and on the CPU, where oneDNN's convolutions are faster in
    it too (measured here: +33% images/s at width 1/8, +10% at full width)."""
    return device.type in {"cuda", "cpu"} if spec == "auto" else bool(spec)


def resolve_cuda_graphs(spec, device: torch.device, compiled: bool = False) -> bool:
    """``auto`` -> the training step is captured in a CUDA graph on CUDA devices (unless
    torch.compile is on, which manages its own graphs); ``true`` needs a CUDA device."""
    if spec == "auto":
        return device.type == "cuda" and not compiled
    return _cuda_only("training.cuda_graphs", spec, device, "CUDA graphs need a CUDA device")


def resolve_eval_overlap(spec, device: torch.device) -> bool:
    """``true``: each epoch is evaluated on a second CUDA stream while the next one trains (needs a
    CUDA device). ``auto`` -> inline on every device: on an H100 the overlapped schedule measured
    no gain (0.203 s per evaluated paper epoch either way; its kernel trace shows the two streams
    never ran at once: benchmarks/results/gpu/804fad2-overlap-check, b1d33d5-overlap-probe)."""
    if spec == "auto":
        return False
    return _cuda_only("training.eval_overlap", spec, device, "a second CUDA stream needs one")


def resolve_triton_eval(spec, device: torch.device) -> bool:
    """``true``: evaluation runs each convolution's bias, ReLU and max-pool as one Triton kernel
    (hw5repro.eval_kernels; the same values), which needs a CUDA device and Triton; on an H100
    it evaluated 1.61x as fast as PyTorch's passes (record 0c1047a-final-check). ``auto`` ->
    PyTorch's passes: ``conv_bias: auto`` (``triton`` on CUDA) already evaluates through these
    kernels, and without Triton they cannot run."""
    if spec == "auto" or not spec:
        return False
    _cuda_only("training.triton_eval", spec, device, "the kernels are Triton's, for GPUs")
    _require_triton("training.triton_eval is true", "use 'auto' or false")
    return True


#: What ``auto`` means for the result settings that run Triton kernels on CUDA: their Triton
#: value where the kernels run (CUDA with Triton), else PyTorch's. On an H100 (record
#: benchmarks/results/gpu/c87efcd-triton-kernels, 0c1047a-final-check) ``conv_bias: triton``
#: trained and evaluated a paper epoch 1.35-1.38x as fast as ``add``, and ``first_conv: triton``
#: 1.02-1.04x as fast as ``torch``.
TRITON_AUTO = {"conv_bias": "add", "first_conv": "torch"}


def resolve_triton_settings(settings, device: torch.device):
    """``settings`` with ``conv_bias`` and ``first_conv`` resolved for ``device``: ``auto`` ->
    ``triton`` on CUDA where Triton is installed, else PyTorch's form (``add``, ``torch``; on a CPU
    every form computes the same). ``triton`` chosen on CUDA needs Triton (a :class:`DeviceError`
    names the key); on a CPU it runs PyTorch's passes."""
    from .eval_kernels import triton_available

    on_cuda = device.type == "cuda"
    resolved = {}
    for key, torch_form in TRITON_AUTO.items():
        value = getattr(settings, key)
        if value == "auto":
            value = "triton" if on_cuda and triton_available() else torch_form
        elif value == "triton" and on_cuda:
            _require_triton(f"training.{key} is triton", "choose another value")
        resolved[key] = value
    return replace(settings, **resolved)


def resolve_settings(settings):
    """``settings`` (:class:`hw5repro.training.Settings`) with every ``auto`` of a result setting
    resolved for the device it names: what the run computes with. A checkpoint's fingerprint
    names these values, so a run preempted where ``auto`` meant bf16 on CUDA does not go on in
    fp32 on a node without bf16 or on a CPU. (Resolving again changes nothing.)"""
    device = resolve_device(settings.device)
    settings = resolve_triton_settings(settings, device)
    return replace(
        settings,
        device=str(device),
        precision=resolve_precision(settings.precision, device),
        channels_last=resolve_channels_last(settings.channels_last, device),
        cuda_graphs=resolve_cuda_graphs(settings.cuda_graphs, device, compiled=settings.compile),
    )


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


def _require_triton(what: str, instead: str) -> None:
    from .eval_kernels import triton_available

    if not triton_available():
        raise DeviceError(
            f"{what} but Triton is not installed (it comes with PyTorch's Linux CUDA builds: "
            f"pip install triton); {instead}"
        )


def _cuda_only(key: str, spec, device: torch.device, why: str) -> bool:
    if spec and device.type != "cuda":
        raise DeviceError(
            f"{key} is true but training runs on {device} ({why}); use 'auto' or false"
        )
    return bool(spec)


def software(device: torch.device) -> dict[str, str | None]:
    """The versions of what computes a run on ``device`` beside the hardware: PyTorch, and on
    CUDA its CUDA runtime, cuDNN (whose autotuned algorithms the runs use) and Triton (the
    kernels of conv_bias and first_conv: triton); None where it does not apply."""
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
