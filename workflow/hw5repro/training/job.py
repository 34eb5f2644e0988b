"""The Snakemake training job of one run. Idempotent: a rerun of a finished run of the same
fingerprint (result settings, data) rewrites the outputs from its checkpoint, training nothing."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
from pathlib import Path

import torch

from ..data.experiment import Run
from ..data.mnist import make_subset
from ..data.rundata import RunData
from . import checkpoint as checkpoints
from .cpu_warning import warn_if_slow_on_cpu
from .device import device_name, software
from .loop import METRIC_COLUMNS, TrainingError, train
from .model import AlexNet, count_parameters
from .settings import Settings

log = logging.getLogger(__name__)


def load_model(path: str | Path, map_location="cpu") -> AlexNet:
    """A trained network from a run's ``model.pt`` (weights and the settings that built it)."""
    saved = torch.load(path, map_location=map_location, weights_only=True)
    model = AlexNet(**saved["model_settings"])
    model.load_state_dict(saved["state_dict"])
    return model


@contextlib.contextmanager
def _naming_the_deterministic_setting(settings: Settings):
    """PyTorch's error for an operation without a deterministic algorithm, naming the setting."""
    try:
        yield
    except RuntimeError as error:
        if not (settings.deterministic and "does not have a deterministic" in str(error)):
            raise
        raise TrainingError(
            "training.deterministic is true, but an operation of this training has no "
            f"deterministic algorithm on this device ({error}); set training.deterministic to "
            "false to train with the device's fastest algorithms (reruns may then differ in "
            "the last bits)"
        ) from error


def _scheduler() -> dict:
    keys = ("SLURM_JOB_ID", "SLURM_JOB_PARTITION", "SLURM_GPUS", "CUDA_VISIBLE_DEVICES")
    return {key: os.environ[key] for key in keys if key in os.environ}


def train_job(run, raw_dir, data, config, outputs, checkpoint, threads=None):
    """Train the run named ``run``; write ``outputs``' ``metrics`` CSV, ``model`` and ``info`` JSON.
    The data are made here from ``raw_dir`` and ``data``; ``config``: ``model``, ``training``."""
    import pandas as pd

    if threads:
        torch.set_num_threads(int(threads))
    run = Run.from_name(run)
    subset = make_subset(raw_dir, data["train_size"], data["test_size"], data["seed"])
    run_data = RunData.of_run(subset, run)
    digest = run_data.digest()
    settings = Settings.from_config(config)
    device = torch.device(settings.device)
    n_train, n_test = run_data.train_x.shape[0], run_data.test_x.shape[0]
    warn_if_slow_on_cpu(config, device, n_train, log, n_test)
    identity = checkpoints.fingerprint(run.name, settings.results(), digest)
    with _naming_the_deterministic_setting(settings):
        rows, model, info = train(run_data, settings, run.seed, checkpoint, identity, desc=run.name)
    if info["resumed_from_epoch"] == settings.epochs:
        message = (
            "%s: already trained (%d epochs, fingerprint %s): outputs written again from its "
            "checkpoint"
        )
        log.info(message, run.name, settings.epochs, identity[:12])
    Path(outputs["metrics"]).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=METRIC_COLUMNS).to_csv(outputs["metrics"], index=False)
    state = {"model_settings": info["model"], "state_dict": checkpoints.to_cpu(model.state_dict())}
    checkpoints.save_atomic(state, Path(outputs["model"]))
    train_seconds = sum(row["epoch_seconds"] for row in rows)
    run_info = info | {
        "job": run.name,
        "settings": settings.results(),
        "device_name": device_name(device),
        **software(device),
        # On a CPU the thread count is part of the result: oneDNN splits reductions over threads.
        "cpu_threads": torch.get_num_threads() if device.type == "cpu" else None,
        "python": platform.python_version(),
        "scheduler": _scheduler(),
        "run_id": run.name,
        "corruption": run.corruption,
        "ratio": run.ratio,
        "seed": run.seed,
        "fingerprint": identity,
        "parameters": count_parameters(model),
        "data": {**dict(data), "sha256": digest},
        "train_images": n_train,
        "test_images": n_test,
        "train_seconds": train_seconds,
        "images_per_second": n_train * len(rows) / max(train_seconds, 1e-9),
    }
    Path(outputs["info"]).write_text(json.dumps(run_info, indent=2))
