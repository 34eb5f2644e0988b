"""Every epoch's evaluation of every run: in eval mode, on every training and test image.

:func:`evaluate_runs` evaluates the runs' evaluation networks (copies of their weights, taken by
:func:`snapshot`); :class:`EpochEvaluator` schedules it, inline or overlapped with the next
epoch's training:

- **inline**: an epoch is evaluated and read back before the next one trains (the CPU's way).
- **overlapped** (``training.eval_overlap: true``; CUDA only; ``auto`` is inline, because on an
  H100 this schedule measured no gain: see ``resolve_eval_overlap``): the epoch's weights are copied
  into the evaluation networks in training order, then evaluated on a second CUDA stream while
  the next epoch trains on a high-priority stream. A training step at batch 64 leaves most of the
  GPU idle between and inside its small kernels; the big evaluation batches fill it. The
  evaluation reads only its own copy of the weights, so it measures exactly what inline
  evaluation measures. An epoch's result is read when the next epoch is submitted, or by
  :meth:`EpochEvaluator.drain` (before a checkpoint and at the end).

Both modes are the same code; only the stream differs. On the CPU there is no second stream, and
overlapped mode merely defers reading the result, which is how the CPU tests exercise it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .steps import mean_loss


@torch.inference_mode()
def evaluate(model, x, y, batch_size: int, autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy and the per-example correctness of one run, in eval mode, both left
    on the device (big batches: evaluation is pure forward work, bound by FLOPs)."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.empty(x.shape[0], dtype=torch.bool, device=x.device)
    for start in range(0, x.shape[0], batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        with autocast():
            out = model(xb)
        loss_sum += F.cross_entropy(out.float(), yb, reduction="sum")
        correct[start : start + batch_size] = out.argmax(1) == yb
    model.train()
    return loss_sum, correct


def epoch_values(losses, n, batch_size, correct, mislabelled, test) -> torch.Tensor:
    """(K, 6): train loss, train acc, acc on the clean examples, acc on the mislabelled ones (on
    their training labels), test loss and test acc (NaN when the test set was not evaluated) for
    ``correct``/``mislabelled`` (K, N)."""

    def share(mask):  # accuracy on the examples of ``mask``; NaN where a run has none
        count = mask.sum(1)
        return torch.where(count > 0, (correct & mask).sum(1) / count.clamp(min=1), float("nan"))

    values = [
        mean_loss(losses, n, batch_size).reshape(-1),
        correct.float().mean(1),
        share(~mislabelled),
        share(mislabelled),
    ]
    if test is None:
        values += [torch.full_like(values[0], float("nan"))] * 2
    else:
        values += list(test)
    return torch.stack(values, 1)


def snapshot(runs) -> None:
    """Copy every run's current weights into its evaluation network (on the current stream)."""
    with torch.no_grad():
        for run, net in enumerate(runs.eval_nets):
            net.load_state_dict(runs.weights(run))


def evaluate_runs(runs, losses: torch.Tensor, with_test: bool) -> torch.Tensor:
    """The epoch's (K, 6) metrics of the runs (see :func:`epoch_values`), from their evaluation
    networks at the evaluation batch size; left on the device."""
    size = runs.settings.eval_batch_size
    correct, test_loss, test_correct = [], [], []
    for run, net in enumerate(runs.eval_nets):
        train_x, train_y, test_x, test_y = runs.eval_data(run)
        correct.append(evaluate(net, train_x, train_y, size, runs.autocast)[1])
        if with_test:
            loss, right = evaluate(net, test_x, test_y, size, runs.autocast)
            test_loss.append(loss / test_x.shape[0])
            test_correct.append(right.float().mean())
    test = (torch.stack(test_loss), torch.stack(test_correct)) if with_test else None
    return epoch_values(
        losses, runs.n, runs.settings.batch_size, torch.stack(correct), runs.mislabelled, test
    )


class Clock:
    """Time stamps in the order of the current stream's work: CUDA events on a GPU (no host
    sync), ``time.perf_counter`` on the CPU."""

    def __init__(self, device: torch.device):
        self.device, self.cuda = device, device.type == "cuda"

    def mark(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self.device))  # this device's, not device 0's
        return event

    def wait(self, mark) -> None:
        """Block the host until the work before ``mark`` is done."""
        if self.cuda:
            mark.synchronize()

    def seconds(self, start, end) -> float:
        return start.elapsed_time(end) / 1000 if self.cuda else end - start


@dataclass
class EpochResult:
    """One evaluated epoch: every run's six values, and the epoch's training and evaluation
    seconds."""

    epoch: int
    values: list[list[float]]
    train_seconds: float
    eval_seconds: float


class EpochEvaluator:
    """Evaluates each submitted epoch, inline or overlapped with the next epoch's training (see
    the module's docstring). The epoch loop runs inside :meth:`training`, marks each epoch's
    start with :meth:`start`, and hands the trained epoch to :meth:`submit`, which returns the
    epochs whose results are in."""

    def __init__(self, runs, device: torch.device, overlap: bool):
        self.runs, self.device, self.overlap = runs, device, overlap
        self.clock = Clock(device)
        streams = overlap and device.type == "cuda"
        self.eval_stream = torch.cuda.Stream(device) if streams else None
        # Training kernels go first; evaluation fills what they leave of the GPU.
        self.train_stream = torch.cuda.Stream(device, priority=-1) if streams else None
        self.pending = None
        self.collected = False

    @contextlib.contextmanager
    def training(self):
        """The epoch loop's context: on the high-priority training stream when overlapping."""
        if self.train_stream is None:
            yield
            return
        outer = torch.cuda.current_stream(self.device)
        self.train_stream.wait_stream(outer)
        try:
            with torch.cuda.stream(self.train_stream):
                yield
        finally:
            outer.wait_stream(self.train_stream)
            outer.wait_stream(self.eval_stream)

    def start(self):
        """Mark the start of an epoch's training."""
        return self.clock.mark()

    def submit(self, epoch: int, started, losses: torch.Tensor, with_test: bool):
        """Evaluate the weights just trained (epoch ``epoch``, begun at ``started``, per-step
        ``losses``); returns the :class:`EpochResult` of every epoch whose evaluation is done."""
        # Overlapped: the previous epoch was evaluated while this one trained; its evaluation
        # networks are free for this epoch's weights once it is read.
        done = self.drain()
        trained = self.clock.mark()
        snapshot(self.runs)
        with self._on_eval_stream():
            begun = self.clock.mark()
            values = self._to_host(evaluate_runs(self.runs, losses, with_test))
            ended = self.clock.mark()
        # ``losses`` stays referenced until read: the training stream must not reuse its memory
        # while the evaluation stream may still read it.
        self.pending = (epoch, values, losses, (started, trained), (begun, ended))
        # The first evaluation of a process runs alone: cuDNN times its algorithms for the
        # evaluation shapes undisturbed.
        if not self.overlap or not self.collected:
            done += self.drain()
        return done

    def drain(self) -> list[EpochResult]:
        """The pending epoch's result (waiting for it), if any."""
        if self.pending is None:
            return []
        epoch, values, _, (started, trained), (begun, ended) = self.pending
        self.pending = None
        self.clock.wait(ended)
        self.collected = True
        return [
            EpochResult(
                epoch,
                values.tolist(),
                self.clock.seconds(started, trained),
                self.clock.seconds(begun, ended),
            )
        ]

    def _to_host(self, values: torch.Tensor) -> torch.Tensor:
        """An asynchronous copy to pinned host memory on CUDA (a copy to pageable memory would
        block the host until the evaluation is done); read once :meth:`drain` waited for it."""
        if not self.clock.cuda:
            return values
        host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
        return host.copy_(values, non_blocking=True)

    def _on_eval_stream(self):
        if self.eval_stream is None:
            return contextlib.nullcontext()
        self.eval_stream.wait_stream(torch.cuda.current_stream(self.device))
        return torch.cuda.stream(self.eval_stream)
