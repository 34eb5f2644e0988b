"""Say so when a long training job lands on a CPU (``training.device: auto`` without a usable
GPU): its estimated time and the preset to use. The estimate interpolates the 2-core CPU
throughput records of ``benchmarks/train_throughput.py`` as a power of the width.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

#: CPU training throughput (images/s, 2 threads) of the records: width -> rate.
MEASURED_RATES = {1.0: 49.3, 0.125: 1815.0}
#: Evaluation (forward only) processes images about this many times faster than training.
EVAL_SPEEDUP = 3.0
#: Jobs estimated to take longer than this on the CPU are warned about.
SLOW_SECONDS = 3600.0
LAPTOP_PRESET = "config/laptop.yaml"

_EXPONENT = math.log(MEASURED_RATES[0.125] / MEASURED_RATES[1.0]) / math.log(1 / 0.125)


def cpu_images_per_second(width: float) -> float:
    """Estimated training throughput on the reference 2-core CPU for a model of ``width``."""
    return MEASURED_RATES[1.0] * float(width) ** -_EXPONENT


def _setting(settings, section: str, key: str, default):
    """``settings.key`` of a Settings-like object, or ``config[section][key]`` of a config."""
    if isinstance(settings, Mapping):
        return settings.get(section, {}).get(key, default)
    return getattr(settings, key, default)


def estimate_cpu_seconds(settings, n_train: int, n_test: int = 0) -> float:
    """Estimated seconds of one training job on the reference CPU (training and evaluation)."""
    width = _setting(settings, "model", "width", 1.0)
    epochs = int(_setting(settings, "training", "epochs", 1))
    eval_every = max(int(_setting(settings, "training", "eval_every", 1)), 1)
    rate = cpu_images_per_second(width)
    evaluations = math.ceil(epochs / eval_every)
    return n_train * epochs / rate + n_test * evaluations / (rate * EVAL_SPEEDUP)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def warn_if_slow_on_cpu(
    settings, device, n_train: int, log: logging.Logger, n_test: int = 0
) -> float | None:
    """Warn at the start of a training job that will run long on the CPU; return the estimate in
    seconds when it warned, else None. ``settings``: a ``training.Settings`` or a config;
    ``device``: the resolved device or its name. Silent on a GPU, when ``training.device`` is
    ``cpu`` (the user's choice) and under :data:`SLOW_SECONDS`."""
    device_type = getattr(device, "type", str(device).split(":")[0])
    requested = str(_setting(settings, "training", "device", "auto"))
    if device_type != "cpu" or requested == "cpu":
        return None
    seconds = estimate_cpu_seconds(settings, n_train, n_test)
    if seconds < SLOW_SECONDS:
        return None
    width = _setting(settings, "model", "width", 1.0)
    epochs = int(_setting(settings, "training", "epochs", 1))
    log.warning(
        "training on the CPU (no usable GPU found, training.device: %s): this job will take "
        "about %s (an estimate: %d images x %d epochs at ~%.0f images/s for width %g, plus "
        "evaluation of %d images, as measured on a 2-core CPU; see benchmarks/README.md). "
        "For a CPU, use the laptop preset instead: snakemake --cores 2 --configfile %s. "
        "To train this configuration on the CPU anyway, set training.device: cpu, which "
        "silences this warning.",
        requested,
        _hours(seconds),
        n_train,
        epochs,
        cpu_images_per_second(width),
        width,
        n_test,
        LAPTOP_PRESET,
    )
    return seconds
