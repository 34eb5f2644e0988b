"""The training loop of one run: fast, and safe to preempt.

The training subset and test set live on the device as tensors; every epoch draws a permutation
(from a CPU generator, so the batch order is the same on every device); the losses stay on the
device until the epoch's one read-back (no per-step host syncs); on CUDA the whole step is one
CUDA graph. Each epoch is evaluated on a copy of the weights (:mod:`.evaluation`). An atomic
checkpoint (model, optimiser, RNG states, epoch, metrics so far) is written every
``checkpoint_every`` epochs and when SIGTERM arrives (what SLURM sends before it kills or requeues
a job), in a background thread while the next epochs train; a restarted job resumes from it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import signal
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.experiment import stream_seed
from ..data.rundata import RunData
from ..pipeline.logs import StoppedBySignal
from .checkpoint import RunCheckpoint
from .device import select_algorithms
from .evaluation import Clock, evaluate_epoch
from .model import AlexNet, conv_epilogue_used
from .settings import Settings
from .sgd import SGD
from .steps import EagerStep, GraphedStep, batch_sizes, minibatch_loss, run_epoch

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


def autocast_for(device: torch.device, precision: str):
    """A context-manager factory: bf16 autocast, or nothing (fp32)."""
    if precision == "bf16":  # no weight-cast cache: the step may be captured in a graph
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext


def train(
    data: RunData,
    settings: Settings,
    seed: int,
    checkpoint: str | Path | None = None,
    fingerprint: str | None = None,
    progress: bool | None = None,
    desc: str = "train",
) -> tuple[list[dict], AlexNet, dict]:
    """Train one run; returns its per-epoch metrics, the trained model and facts about the job.

    With a ``checkpoint`` path the run resumes from it when it belongs to ``fingerprint`` (else
    it is set aside), and writes it every ``settings.checkpoint_every`` epochs, after the last
    epoch, and on SIGTERM (then :class:`Preempted` is raised). A run whose checkpoint is of the
    last epoch trains nothing: its metrics and model come from the checkpoint.
    """
    device = torch.device(settings.device)
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    select_algorithms(device, settings.deterministic)
    autocast = autocast_for(device, settings.precision)
    torch.manual_seed(stream_seed(seed, "init"))
    model = AlexNet(**settings.model()).to(device, memory_format=memory_format)
    optimizer = SGD(
        model.parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
    )
    eval_model = copy.deepcopy(model)  # the evaluation's copy of the weights
    generator = torch.Generator().manual_seed(stream_seed(seed, "batches"))
    on_device = data.to(device, memory_format)
    n = on_device.train_x.shape[0]
    saved = RunCheckpoint(checkpoint, fingerprint, desc)
    start_epoch, metrics = saved.resume(model, optimizer, generator, device)
    step = EagerStep(
        model, optimizer, minibatch_loss(model, on_device.train_x, on_device.train_y, autocast)
    )
    if settings.cuda_graphs and start_epoch < settings.epochs:  # (a finished run trains nothing)
        step = GraphedStep(step, batch_sizes(n, settings.batch_size))
    clock, wall_start = Clock(device), time.perf_counter()
    # A progress bar on a terminal (progress=None lets tqdm decide), one log line per epoch always.
    bar = tqdm(
        range(start_epoch, settings.epochs),
        desc=desc,
        initial=start_epoch,
        total=settings.epochs,
        unit="epoch",
        disable=None if progress is None else not progress,
    )
    with _SigtermFlag() as sigterm, saved:  # exit: the last write is done
        for epoch in bar:
            started = clock.mark()
            losses = run_epoch(step, n, settings.batch_size, generator)
            trained = clock.mark()
            with torch.no_grad():
                eval_model.load_state_dict(model.state_dict())
            last = epoch + 1 == settings.epochs
            with_test = (epoch + 1) % settings.eval_every == 0 or last
            values = evaluate_epoch(
                eval_model, on_device, losses, settings.batch_size, settings.eval_batch_size,
                autocast, with_test,
            )  # fmt: skip
            evaluated = clock.mark()
            seconds = clock.seconds(started, trained), clock.seconds(trained, evaluated)
            metrics.append(_metrics_row(epoch + 1, values.tolist(), *seconds, desc))
            bar.set_postfix(loss=f"{metrics[-1]['train_loss']:.3f}")
            due = (epoch + 1) % settings.checkpoint_every == 0 or last
            if saved.path is not None and (due or sigterm.raised):
                saved.save(model, optimizer, generator, device, epoch + 1, metrics, last)
            if sigterm.raised:
                raise Preempted(
                    f"{desc}: stopped by SIGTERM after epoch {epoch + 1}; checkpoint written, "
                    "the job resumes from it when it runs again"
                )
    info = {
        "device": str(device),
        "model": settings.model(),  # what rebuilds the network: AlexNet(**model)
        "precision": settings.precision,
        "channels_last": settings.channels_last,
        "cuda_graphs": settings.cuda_graphs,
        "deterministic": settings.deterministic,
        "conv_epilogue": conv_epilogue_used(model, device),
        "resumed_from_epoch": start_epoch,
        "wall_seconds": time.perf_counter() - wall_start,
        # the loop's pauses for checkpoints (host copies), and their writing in the background
        "checkpoint_pause_seconds": saved.pause_seconds,
        "checkpoint_write_seconds": saved.write_seconds,
    }
    return metrics, model, info


def _metrics_row(epoch: int, values: list[float], train_s: float, eval_s: float, desc: str):
    """The metrics of one epoch; a non-finite training loss stops training."""
    loss, acc, acc_clean, acc_mislabelled, test_loss, test_acc = values
    if not math.isfinite(loss):
        raise TrainingError(
            f"{desc}: training loss became {loss} at epoch {epoch}; "
            "lower training.lr or check the data"
        )
    log.info(
        "%s epoch %d train_loss %.4f train_acc %.4f test_acc %.4f (%.2fs + eval %.2fs)",
        desc, epoch, loss, acc, test_acc, train_s, eval_s,
    )  # fmt: skip
    return {
        "epoch": epoch,
        "train_loss": loss,
        "train_acc": acc,
        "train_acc_clean": acc_clean,
        "train_acc_mislabelled": acc_mislabelled,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "epoch_seconds": train_s,
        "eval_seconds": eval_s,
    }
