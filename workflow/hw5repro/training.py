"""A fast, preemption-safe training loop for one run of the memorisation experiment.

The training subset and test set live on the device as tensors; every epoch draws a permutation on
the device; losses and accuracies are accumulated on the device and read back once per epoch (no
per-step host syncs); optional channels_last, bf16 autocast and torch.compile; each epoch is
evaluated by :mod:`hw5repro.evaluation` (inline; with ``eval_overlap: true``, on CUDA while the
next epoch trains). An atomic checkpoint
(model, optimiser, RNG states, epoch, metrics so far) is written every ``checkpoint_every`` epochs
and when SIGTERM arrives (what SLURM sends before it kills a job); a restarted job resumes from it.
The loop waits for a copy of the state on the host, not for the disk (:mod:`hw5repro.checkpoint`
writes the files in a background thread while the next epochs train).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from . import checkpoint as checkpoints
from .corruption import make_corrupted, to_float
from .cpu_warning import warn_if_slow_on_cpu
from .device import (
    resolve_cuda_graphs,
    resolve_eval_overlap,
    resolve_settings,
    select_algorithms,
)
from .evaluation import EpochEvaluator, EpochResult
from .first_conv import first_conv_used
from .model import AlexNet, conv_bias_used
from .pipeline.stops import StoppedBySignal
from .runset import make_runs, model_settings
from .settings import is_inert, is_operational
from .side_by_side import SideBySideAlexNets
from .steps import (
    CompiledStep,
    EagerStep,
    GraphedStep,
    batch_sizes,
    minibatch_loss,
    run_epoch,
)

log = logging.getLogger(__name__)

METRIC_COLUMNS = [
    "epoch",
    "train_loss",
    "train_acc",
    "train_acc_clean",
    "train_acc_mislabelled",
    "test_loss",
    "test_acc",
    "epoch_seconds",
    "eval_seconds",
]


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""


class Preempted(StoppedBySignal):
    """SIGTERM arrived; a checkpoint was written and the job should be restarted."""


@dataclass
class Settings:
    """What one training run needs to know, taken from the ``model`` and ``training`` sections."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    width: float = 1.0
    dropout: float = 0.5
    init: str = "default"
    device: str = "auto"
    precision: str = "auto"
    channels_last: object = "auto"
    compile: bool = False
    cuda_graphs: object = "auto"
    deterministic: bool = False
    conv_bias: str = "add"
    first_conv: str = "torch"
    eval_overlap: object = "auto"
    triton_eval: object = "auto"
    runs_per_job: int = 1
    group_form: str = "fused"
    eval_every: int = 1
    eval_batch_size: int = 1000
    checkpoint_every: int = 10

    @classmethod
    def from_config(cls, config: dict) -> Settings:
        t, m = config["training"], config["model"]
        keys = set(cls.__dataclass_fields__) - {"width", "dropout", "init"}
        return cls(
            width=m["width"],
            dropout=m["dropout"],
            init=m.get("init", "default"),
            **{k: t[k] for k in keys if k in t},
        )


@dataclass
class RunData:
    """Training and test tensors of one run (float images in [0, 1] or corrupted inputs)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    mislabelled: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @classmethod
    def from_artifacts(cls, subset: dict, corrupted: dict) -> RunData:
        train_x = corrupted["train_x"]
        test_x = corrupted["test_x"]
        return cls(
            train_x=to_float(subset["train_x"]) if train_x is None else train_x,
            train_y=corrupted["labels"],
            mislabelled=corrupted["mislabelled"],
            test_x=to_float(subset["test_x"]) if test_x is None else test_x,
            test_y=subset["test_y"],
        )

    @classmethod
    def of_run(cls, subset: dict, run) -> RunData:
        """The data ``run`` (an :class:`~hw5repro.experiment.Run`) trains on: ``subset``
        (:func:`hw5repro.mnist.make_subset`) with the run's corruption applied."""
        return cls.from_artifacts(subset, make_corrupted(subset, run))

    def digest(self) -> str:
        """SHA-256 of every tensor's bytes: what a checkpoint's fingerprint names as its data."""
        h = hashlib.sha256()
        for name in ("train_x", "train_y", "mislabelled", "test_x", "test_y"):
            tensor = getattr(self, name).contiguous()
            h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            h.update(tensor.view(torch.uint8).numpy().tobytes())
        return h.hexdigest()


class _SigtermFlag:
    """Records SIGTERM instead of dying, so the loop can checkpoint first."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        with contextlib.suppress(ValueError):  # not in the main thread: leave signals alone
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        # only the flag: logging here could re-enter a log write the signal interrupted (SLURM
        # sends SIGTERM twice, through srun and to the step); the loop reports it (Preempted)
        self.raised = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def train_epoch(model, optimizer, x, y, batch_size, generator, autocast) -> torch.Tensor:
    """One eager epoch of minibatch SGD (the benchmarks' and tests' entry point)."""
    model.train()
    step = EagerStep(model, optimizer, minibatch_loss(model, x, y, autocast))
    return run_epoch(step, x.shape[0], batch_size, generator)


def make_step(settings: Settings, runs, device):
    """The training step the settings ask for: eager, over a compiled model (``compile``), and
    graphed on CUDA (``cuda_graphs``); over one run or K runs in one job (either form) alike."""
    model = runs.model
    if settings.compile:  # runs side by side: each run's network (SideBySideAlexNets.compiled)
        model = model.compiled() if isinstance(model, SideBySideAlexNets) else torch.compile(model)
    step = EagerStep(runs.model, runs.optimizer, runs.loss(model))
    if settings.compile:  # compiled lazily, in the first steps: CompiledStep names a failure
        step = CompiledStep(step)
    if resolve_cuda_graphs(settings.cuda_graphs, device, compiled=settings.compile):
        step = GraphedStep(step, batch_sizes(runs.n, settings.batch_size), runs=runs.index_runs)
    return step


def train_runs(
    datas: list[RunData],
    settings: Settings,
    seeds: list[int],
    checkpoint_paths: list | None = None,
    fingerprints: list | None = None,
    progress: bool | None = None,
    descs: list[str] | None = None,
    final_checkpoint: bool = True,
) -> tuple[list[list[dict]], list[AlexNet], dict]:
    """Train K >= 1 runs in one process (K > 1: in the form ``settings.group_form``, fused in
    one network or side by side); returns each run's per-epoch metrics and trained model, and
    facts about the job.

    With checkpoint paths the runs resume from their checkpoints when every one exists and
    belongs to its fingerprint (else they are set aside), and write them every
    ``settings.checkpoint_every`` epochs, after the last epoch (unless ``final_checkpoint`` is
    false) and on SIGTERM (then :class:`Preempted` is raised). The workflow's job keeps the last
    one: a rerun of a finished run resumes after its last epoch and trains nothing.
    """
    configured, settings = settings, resolve_settings(settings)
    device, precision = torch.device(settings.device), settings.precision
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    select_algorithms(device, settings.deterministic)

    def autocast():
        if precision == "bf16":  # no weight-cast cache: the step may be captured in a graph
            return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    k = len(datas)
    descs = descs or [f"run {i}" for i in range(k)]
    n_train, n_test = datas[0].train_x.shape[0], datas[0].test_x.shape[0]
    warn_if_slow_on_cpu(configured, device, k * n_train, log, k * n_test)  # (device: auto)
    runs = make_runs(datas, settings, seeds, device, memory_format, autocast)
    saved = checkpoints.RunCheckpoints(
        checkpoint_paths or [None] * k, fingerprints or [None] * k, descs
    )
    start_epoch, metrics = saved.resume(runs, device)
    step = make_step(settings, runs, device)
    evaluator = EpochEvaluator(runs, device, resolve_eval_overlap(settings.eval_overlap, device))
    wall_start = time.perf_counter()
    # A progress bar on a terminal (progress=None lets tqdm decide), one log line per epoch always.
    bar = tqdm(
        range(start_epoch, settings.epochs),
        desc=", ".join(descs),
        initial=start_epoch,
        total=settings.epochs,
        unit="epoch",
        disable=None if progress is None else not progress,
    )

    def record(results):  # evaluated epochs (overlapped: the previous one) into the metrics
        for result in results:
            for run, row in enumerate(result.values):
                metrics[run].append(_metrics_row(result, row, descs[run]))
            bar.set_postfix(loss=f"{result.values[0][0]:.3f}", acc=f"{result.values[0][1]:.3f}")

    def with_test(epoch):  # the test set too: every eval_every epochs, and the last one
        return (epoch + 1) % settings.eval_every == 0 or epoch + 1 == settings.epochs

    def checkpoint_after(epoch):  # every checkpoint_every epochs, and on SIGTERM
        last = epoch + 1 == settings.epochs
        due = final_checkpoint if last else (epoch + 1) % settings.checkpoint_every == 0
        return saved.paths[0] is not None and (sigterm.raised or due)

    with _SigtermFlag() as sigterm, evaluator.training(), saved:  # exit: the last write is done
        for epoch in bar:
            started = evaluator.start()
            losses = run_epoch(step, runs.n, settings.batch_size, runs.generators)
            record(evaluator.submit(epoch, started, losses, with_test(epoch)))
            if checkpoint_after(epoch):
                record(evaluator.drain())
                saved.save(runs, device, epoch + 1, metrics, final=epoch + 1 == settings.epochs)
            if sigterm.raised:
                raise Preempted(
                    f"{', '.join(descs)}: stopped by SIGTERM after epoch {epoch + 1}; "
                    "checkpoint written, rerun the job to resume"
                )
        record(evaluator.drain())
    info = {
        "device": str(device),
        # what rebuilds each run's network (``auto`` resolved for the device): AlexNet(**model)
        "model": model_settings(settings),
        "precision": precision,
        "channels_last": settings.channels_last,
        "cuda_graphs": isinstance(step, GraphedStep),
        "deterministic": bool(settings.deterministic),
        "conv_bias": conv_bias_used(runs.model, device),
        "first_conv": first_conv_used(runs.model, device),
        "eval_overlap": evaluator.overlap,
        "triton_eval": runs.eval_nets[0].features.fused_eval_epilogues,
        "compiled": bool(settings.compile),
        "runs_fused": k,  # runs in the job, whatever their form
        "group_form": settings.group_form if k > 1 else None,
        "resumed_from_epoch": start_epoch,
        "wall_seconds": time.perf_counter() - wall_start,
        # the loop's pauses for checkpoints (host copies), and their writing in the background
        "checkpoint_pause_seconds": saved.pause_seconds,
        "checkpoint_write_seconds": saved.write_seconds,
    }
    return metrics, [runs.run_model(i) for i in range(k)], info


def _metrics_row(result: EpochResult, values: list[float], desc: str) -> dict:
    """One run's metrics of one evaluated epoch; a non-finite training loss stops training."""
    loss, acc, acc_clean, acc_mislabelled, test_loss, test_acc = values
    epoch = result.epoch + 1
    if not math.isfinite(loss):
        raise TrainingError(
            f"{desc}: training loss became {loss} at epoch {epoch}; "
            "lower training.lr or check the data"
        )
    log.info(
        "%s epoch %d train_loss %.4f train_acc %.4f test_acc %.4f (%.2fs + eval %.2fs)",
        desc,
        epoch,
        loss,
        acc,
        test_acc,
        result.train_seconds,
        result.eval_seconds,
    )
    return {
        "epoch": epoch,
        "train_loss": loss,
        "train_acc": acc,
        "train_acc_clean": acc_clean,
        "train_acc_mislabelled": acc_mislabelled,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "epoch_seconds": result.train_seconds,
        "eval_seconds": result.eval_seconds,
    }


def train(
    data: RunData,
    settings: Settings,
    seed: int,
    checkpoint: str | Path | None = None,
    progress: bool | None = None,
    desc: str = "train",
    fingerprint: str | None = None,
) -> tuple[list[dict], AlexNet, dict]:
    """Train one run (see :func:`train_runs`): its metrics, trained model and facts."""
    metrics, models, info = train_runs(
        [data], settings, [seed], [checkpoint], [fingerprint], progress, [desc]
    )
    return metrics[0], models[0], info


def result_settings(settings: Settings, job_runs: int | None = None) -> dict:
    """The settings that change the result of a run in a job of ``job_runs`` runs (default: the
    most a job trains; hw5repro.settings splits the keys once): what a checkpoint's fingerprint
    covers."""
    values = vars(settings)
    return {
        k: v
        for k, v in sorted(values.items())
        if not is_operational(f"training.{k}") and not is_inert(f"training.{k}", values, job_runs)
    }


def load_model(path: str | Path, map_location="cpu") -> AlexNet:
    """A trained network from a run's ``model.pt`` (weights and the settings that built it)."""
    saved = torch.load(path, map_location=map_location, weights_only=True)
    model = AlexNet(**saved["model_settings"])
    model.load_state_dict(saved["state_dict"])
    return model


@contextlib.contextmanager
def _naming_the_deterministic_setting(settings: Settings):
    """PyTorch's error for an operation without a deterministic algorithm, as the setting that
    asked for one (``training.deterministic``) and what to do about it."""
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


def train_job(runs, raw_dir, data, config, outputs, checkpoint_paths, threads=None, job=None):
    """The Snakemake training job of one run, or of several runs fused (``runs_per_job`` > 1):
    make each run's data, train (resuming from checkpoints of the same runs, settings and data),
    and write for every run its metrics CSV, final model (weights + model settings) and a JSON of
    facts. The checkpoint after the last epoch is kept: a rerun of the job with the same
    fingerprint (after Snakemake lost track of it, say) writes the outputs again from it in
    seconds, training nothing. ``runs``, ``outputs`` (each with ``metrics``,
    ``model`` and ``info`` paths) and ``checkpoint_paths``: one per run. The data are made here,
    not read from files of earlier jobs: the subset of the verified MNIST files in ``raw_dir``
    (``data``: ``seed``, ``train_size``, ``test_size``) and the run's corruption, both
    deterministic and a fraction of a second, where a job of their own would cost a process
    start and an import of torch before the first epoch."""
    import json
    import platform

    import pandas as pd

    from .device import device_name, software
    from .experiment import Run
    from .mnist import make_subset
    from .model import count_parameters

    if threads:
        torch.set_num_threads(int(threads))
    runs = [Run.from_name(name) for name in runs]
    names = [run.name for run in runs]
    subset = make_subset(raw_dir, data["train_size"], data["test_size"], data["seed"])
    datas = [RunData.of_run(subset, run) for run in runs]
    digests = [run_data.digest() for run_data in datas]
    settings = Settings.from_config(config)
    # Fused runs share one dropout stream: a run's result also depends on who it trains with.
    together = {"fused_with": names} if len(runs) > 1 else {}
    # (the settings as resolved here: a checkpoint of another device's ``auto`` is set aside)
    resolved = result_settings(resolve_settings(settings), len(runs))
    identities = [
        checkpoints.fingerprint(run.name, resolved | together, digest)
        for run, digest in zip(runs, digests, strict=True)
    ]
    with _naming_the_deterministic_setting(settings):
        metrics, models, info = train_runs(
            datas,
            settings,
            [run.seed for run in runs],
            checkpoint_paths=list(checkpoint_paths),
            fingerprints=identities,
            descs=names,
        )
    if info["resumed_from_epoch"] == settings.epochs:
        for name, identity in zip(names, identities, strict=True):
            log.info(
                "%s: already trained (%d epochs, fingerprint %s): outputs written again from its "
                "checkpoint",
                name,
                settings.epochs,
                identity[:12],
            )
    device = torch.device(info["device"])
    common = info | {
        "job": job or names[0],  # runs_fused (from train_runs) says how many runs it trained
        "job_runs": names,
        "settings": result_settings(settings, len(runs)),
        "device_name": device_name(device),
        **software(device),  # torch, and on CUDA the CUDA, cuDNN and Triton versions
        # On a CPU the thread count is part of the result: oneDNN splits its reductions over the
        # threads, so another count rounds differently (and SGD amplifies it). On CUDA the host
        # threads compute nothing of it.
        "cpu_threads": torch.get_num_threads() if device.type == "cpu" else None,
        "python": platform.python_version(),
        "scheduler": {
            key: os.environ[key]
            for key in ("SLURM_JOB_ID", "SLURM_JOB_PARTITION", "SLURM_GPUS", "CUDA_VISIBLE_DEVICES")
            if key in os.environ
        },
    }
    for run, run_data, digest, rows, model, identity, out in zip(
        runs, datas, digests, metrics, models, identities, outputs, strict=True
    ):
        Path(out["metrics"]).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows, columns=METRIC_COLUMNS).to_csv(out["metrics"], index=False)
        checkpoints.save_atomic(
            {
                "model_settings": info["model"],
                "state_dict": checkpoints.to_cpu(model.state_dict()),
            },
            Path(out["model"]),
        )
        train_seconds = sum(row["epoch_seconds"] for row in rows)
        run_info = common | {
            "run_id": run.name,
            "corruption": run.corruption,
            "ratio": run.ratio,
            "seed": run.seed,
            "fingerprint": identity,
            "parameters": count_parameters(model),
            "data": {**dict(data), "sha256": digest},
            "train_images": int(run_data.train_x.shape[0]),
            "test_images": int(run_data.test_x.shape[0]),
            "train_seconds": train_seconds,
            # this run's own images per second of the job's training time (fused: K runs share it)
            "images_per_second": run_data.train_x.shape[0] * len(rows) / max(train_seconds, 1e-9),
        }
        Path(out["info"]).write_text(json.dumps(run_info, indent=2))
