"""What every benchmark record starts with: its kind, when, and the machine that measured it."""

from __future__ import annotations

import platform
from datetime import datetime, timezone

import torch

from hw5repro.training.device import device_name


def record_header(benchmark: str, device: torch.device) -> dict:
    return {
        "benchmark": benchmark,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
