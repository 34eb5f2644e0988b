"""Every epoch's evaluation of a run, in eval mode on every training and test image, with the
results left on the device until the epoch's one read-back."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .steps import mean_loss


@torch.inference_mode()
def evaluate(model, x, y, batch_size: int, autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy and per-example correctness, in eval mode, left on the device."""
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
    """(6,): train loss and acc, acc on the clean and on the mislabelled examples, test loss and
    acc (NaN when the test set was not evaluated)."""

    def share(mask):  # accuracy on the examples of ``mask``; NaN where there are none
        count = mask.sum()
        return torch.where(count > 0, (correct & mask).sum() / count.clamp(min=1), float("nan"))

    values = [mean_loss(losses, n, batch_size), correct.float().mean()]
    values += [share(~mislabelled), share(mislabelled)]
    nan = torch.full_like(values[0], float("nan"))
    values += list(test) if test is not None else [nan, nan]
    return torch.stack(values)


def evaluate_epoch(net, data, losses, batch_size, eval_batch_size, autocast, with_test):
    """The epoch's six metrics (:func:`epoch_values`) of ``net`` on ``data``'s device tensors."""
    correct = evaluate(net, data.train_x, data.train_y, eval_batch_size, autocast)[1]
    test = None
    if with_test:
        loss, right = evaluate(net, data.test_x, data.test_y, eval_batch_size, autocast)
        test = (loss / data.test_x.shape[0], right.float().mean())
    n = data.train_x.shape[0]
    return epoch_values(losses, n, batch_size, correct, data.mislabelled, test)


class Clock:
    """Time stamps in stream order: CUDA events on a GPU (no host sync), else perf_counter."""

    def __init__(self, device: torch.device):
        self.device, self.cuda = device, device.type == "cuda"

    def mark(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self.device))  # this device's, not device 0's
        return event

    def seconds(self, start, end) -> float:
        """Seconds between two marks; waits for the work before ``end`` on a GPU."""
        if not self.cuda:
            return end - start
        end.synchronize()
        return start.elapsed_time(end) / 1000
