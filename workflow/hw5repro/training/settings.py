"""What one training run computes with: the ``model`` and ``training`` sections of a validated
configuration (defaults from config/schema.yaml), every ``auto`` resolved once for the device.
A checkpoint's fingerprint names the resolved result settings, so a run where ``auto`` meant bf16
does not resume in fp32 on another device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch

from ..pipeline.config import is_operational
from .device import DeviceError, resolve_device


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one run (no ``auto`` left)."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    width: float
    dropout: float
    init: str
    device: str
    precision: str
    channels_last: bool
    cuda_graphs: bool
    deterministic: bool
    conv_epilogue: str
    eval_every: int
    eval_batch_size: int
    checkpoint_every: int

    @classmethod
    def from_config(cls, config: Mapping) -> Settings:
        """The settings of a filled ``config``, resolved for the device of ``training.device``."""
        model, training = config["model"], config["training"]
        device = resolve_device(training["device"])
        return cls(
            epochs=int(training["epochs"]),
            batch_size=int(training["batch_size"]),
            lr=float(training["lr"]),
            momentum=float(training["momentum"]),
            weight_decay=float(training["weight_decay"]),
            width=float(model["width"]),
            dropout=float(model["dropout"]),
            init=model["init"],
            device=str(device),
            precision=resolve_precision(training["precision"], device),
            channels_last=resolve_channels_last(training["channels_last"]),
            cuda_graphs=resolve_cuda_graphs(training["cuda_graphs"], device),
            deterministic=bool(training["deterministic"]),
            conv_epilogue=resolve_conv_epilogue(training["conv_epilogue"], device),
            eval_every=int(training["eval_every"]),
            eval_batch_size=int(training["eval_batch_size"]),
            checkpoint_every=int(training["checkpoint_every"]),
        )

    def model(self) -> dict:
        """What builds (and rebuilds) the network: ``AlexNet(**settings.model())``."""
        return {
            "width": self.width,
            "dropout": self.dropout,
            "init": self.init,
            "conv_epilogue": self.conv_epilogue,
        }

    def results(self) -> dict:
        """The settings that change a result (what a checkpoint's fingerprint covers)."""
        return {
            k: v for k, v in sorted(asdict(self).items()) if not is_operational(f"training.{k}")
        }


def resolve_precision(spec: str, device: torch.device) -> str:
    """``auto`` -> bf16 autocast on GPUs that support it, fp32 otherwise."""
    if spec == "auto":
        bf16_ok = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return "bf16" if bf16_ok else "fp32"
    return spec


def resolve_channels_last(spec) -> bool:
    """``auto`` -> channels_last: faster on GPUs and with oneDNN's convolutions on CPUs."""
    return True if spec == "auto" else bool(spec)


def resolve_cuda_graphs(spec, device: torch.device) -> bool:
    """``auto`` -> CUDA graphs on CUDA devices; ``true`` needs a CUDA device."""
    if spec == "auto":
        return device.type == "cuda"
    if spec and device.type != "cuda":
        raise DeviceError(
            f"training.cuda_graphs is true but training runs on {device} (CUDA graphs need a "
            "CUDA device); use 'auto' or false"
        )
    return bool(spec)


def resolve_conv_epilogue(spec: str, device: torch.device) -> str:
    """``auto`` -> ``triton`` on CUDA with Triton, else ``torch``; ``triton`` on CUDA needs it."""
    from ..kernels.epilogues import triton_available

    on_cuda = device.type == "cuda"
    if spec == "auto":
        return "triton" if on_cuda and triton_available() else "torch"
    if spec == "triton" and on_cuda and not triton_available():
        raise DeviceError(
            "training.conv_epilogue is triton but Triton is not installed (it comes with "
            "PyTorch's Linux CUDA builds: pip install triton); choose torch or auto"
        )
    return spec
