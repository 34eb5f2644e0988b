"""The training loop of one run: the batch order comes from a CPU generator (the same on every
device); a checkpoint is written in the background every ``checkpoint_every`` epochs and on SIGTERM
(SLURM's notice before a kill or requeue), and a restarted job resumes from it."""

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
        # only the flag: logging here could re-enter a log write the signal interrupted
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
    A ``checkpoint`` of ``fingerprint`` is resumed; on SIGTERM :class:`Preempted` is raised."""
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
    eval_model = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(stream_seed(seed, "batches"))
    on_device = data.to(device, memory_format)
    n = on_device.train_x.shape[0]
    saved = RunCheckpoint(checkpoint, fingerprint, desc)
    start_epoch, metrics = saved.resume(model, optimizer, generator, device)
    step = EagerStep(
        model, optimizer, minibatch_loss(model, on_device.train_x, on_device.train_y, autocast)
    )
    if settings.cuda_graphs and start_epoch < settings.epochs:
        step = GraphedStep(step, batch_sizes(n, settings.batch_size))
    clock, wall_start = Clock(device), time.perf_counter()
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
        "model": settings.model(),
        "precision": settings.precision,
        "channels_last": settings.channels_last,
        "cuda_graphs": settings.cuda_graphs,
        "deterministic": settings.deterministic,
        "conv_epilogue": conv_epilogue_used(model, device),
        "resumed_from_epoch": start_epoch,
        "wall_seconds": time.perf_counter() - wall_start,
        "checkpoint_pause_seconds": saved.pause_seconds,
        "checkpoint_write_seconds": saved.write_seconds,
    }
    return metrics, model, info


def _metrics_row(epoch: int, values: list[float], train_s: float, eval_s: float, desc: str):
    """The metrics of one epoch; a non-finite training loss stops training."""
    loss, acc, _, _, _, test_acc = values
    if not math.isfinite(loss):
        raise TrainingError(
            f"{desc}: training loss became {loss} at epoch {epoch}; "
            "lower training.lr or check the data"
        )
    log.info(
        "%s epoch %d train_loss %.4f train_acc %.4f test_acc %.4f (%.2fs + eval %.2fs)",
        desc, epoch, loss, acc, test_acc, train_s, eval_s,
    )  # fmt: skip
    return dict(zip(METRIC_COLUMNS, [epoch, *values, train_s, eval_s], strict=True))
