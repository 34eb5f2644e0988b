"""Does the overlapped evaluation overlap? A GPU probe of what two CUDA streams get from one GPU
while one of them trains a batch-64 run.

    python benchmarks/overlap_probe.py --device cuda --out DIR

It runs one paper epoch trained and evaluated (the throughput benchmark's ``Bench``, with the
workflow's own parts) under several schedules:

- ``inline``: evaluation after each epoch, on the training stream;
- ``overlapped``: ``training.eval_overlap: true`` as the workflow runs it (evaluation on a second
  stream, training on a high-priority one);
- on CUDA also: both streams at the default priority; the evaluation stream at the high
  priority; training on the caller's default stream; evaluation in batches of 1,000;

and K graphed training runs (``--side-by-side``, default 2 and 6) one after the other and side
by side, each on its own stream of one process: the concurrency that six training jobs under MPS
would get, measured without MPS (two side by side gained 1.11x on an H100). For each it
records the seconds per epoch, the host's seconds per epoch queueing the training, waiting for
evaluations and in the rest of ``submit`` (and of that rest: copying the weights into the
evaluation networks, queueing the evaluation, and the copy of its result to the host), and a
kernel trace (``torch.profiler``): per stream the
time its kernels ran, the GPU's idle time, and the time kernels of two streams ran at the same
moment. Concurrency without a shorter epoch means the GPU's SMs were already full; none at all
means the schedule or the hardware serialised the streams (the host times say which: a host that
waits for each evaluation before it can queue the next epoch's training serialises them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from records import record_header
from train_throughput import Bench, _sync, time_loop
from train_throughput import parse_args as throughput_args

import hw5repro.evaluation
from hw5repro.device import resolve_triton_settings
from hw5repro.evaluation import EpochEvaluator
from hw5repro.training import Settings


def busy_seconds(intervals) -> float:
    """Length of the union of ``(start, end)`` intervals (µs in, seconds out)."""
    total, end = 0.0, float("-inf")
    for s, e in sorted(intervals):
        if s > end:
            total, end = total + e - s, e
        elif e > end:
            total, end = total + e - end, e
    return total / 1e6


def stream_concurrency(trace: dict) -> dict:
    """Per-stream busy seconds of a Chrome trace's GPU kernels and memory operations, their
    union, and the seconds during which kernels of two or more streams ran at once."""
    by_stream: dict[str, list] = {}
    names: dict[str, dict[str, float]] = {}
    for ev in trace.get("traceEvents", []):
        if ev.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset") and "dur" in ev:
            stream = str(ev.get("args", {}).get("stream", ev.get("tid")))
            by_stream.setdefault(stream, []).append((ev["ts"], ev["ts"] + ev["dur"]))
            per_name = names.setdefault(stream, {})
            name = ev.get("name", "?")[:90]
            per_name[name] = per_name.get(name, 0.0) + ev["dur"] / 1e6
    if not by_stream:
        return {"streams": {}, "busy_union_seconds": 0.0, "concurrent_seconds": 0.0}
    busy = {s: busy_seconds(iv) for s, iv in by_stream.items()}
    union = busy_seconds([i for iv in by_stream.values() for i in iv])
    starts = min(i[0] for iv in by_stream.values() for i in iv)
    ends = max(i[1] for iv in by_stream.values() for i in iv)
    return {
        "streams": {
            s: {
                "kernels": len(by_stream[s]),
                "busy_seconds": busy[s],
                "top_kernels_seconds": dict(sorted(names[s].items(), key=lambda kv: -kv[1])[:8]),
            }
            for s in busy
        },
        "span_seconds": (ends - starts) / 1e6,
        "busy_union_seconds": union,
        "gpu_idle_seconds": (ends - starts) / 1e6 - union,
        # with two streams, the time both ran; with more, the kernel seconds run beside another
        # stream's (at least the time two or more ran at once)
        "concurrent_seconds": sum(busy.values()) - union,
    }


def traced(fn, device) -> dict:
    """Run ``fn(start)`` (a timed loop that calls ``start`` after its warm-up) with the profiler
    (CUDA kernels) from ``start`` on, and analyse the trace's streams."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    prof = torch.profiler.profile(activities=activities)
    fn(prof.start)
    _sync(device)
    prof.stop()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        return stream_concurrency(json.loads(path.read_text()))


def variant(base, train_priority: int | None = -1, eval_priority: int = 0):
    """An :class:`~hw5repro.evaluation.EpochEvaluator` with the given stream priorities (None:
    the default stream's) that records, per epoch, the host's seconds queueing the training,
    waiting for evaluations, and in the rest of ``submit``; instances in ``.made``."""

    class Variant(base):
        made: list = []

        def __init__(self, runs, device, overlap):
            super().__init__(runs, device, overlap)
            if self.eval_stream is not None:
                self.eval_stream = torch.cuda.Stream(device, priority=eval_priority)
                self.train_stream = (
                    None
                    if train_priority is None
                    else torch.cuda.Stream(device, priority=train_priority)
                )
            self.host, self.waited, self.began = [], 0.0, None
            Variant.made.append(self)

        def training(self):
            if self.train_stream is None:  # train on the caller's stream
                return contextlib.nullcontext()
            return super().training()

        def start(self):
            self.began = time.perf_counter()
            return super().start()

        def submit(self, *args, **kwargs):
            submitted, self.waited = time.perf_counter(), 0.0
            self.parts = dict.fromkeys(SUBMIT_PARTS, 0.0)
            parts = {"snapshot": "snapshot", "evaluate_runs": "queue_evaluation"}
            with timing(hw5repro.evaluation, self.parts, **parts):
                done = super().submit(*args, **kwargs)
            rest = time.perf_counter() - submitted - self.waited
            self.host.append((submitted - self.began, self.waited, rest, *self.parts.values()))
            return done

        def _to_host(self, values):
            begun = time.perf_counter()
            host = super()._to_host(values)
            self.parts["copy_to_host"] += time.perf_counter() - begun
            return host

        def drain(self):
            begun = time.perf_counter()
            done = super().drain()
            self.waited += time.perf_counter() - begun
            return done

    return Variant


#: The parts of ``rest_of_submit`` that the probe times (the host's seconds in each).
SUBMIT_PARTS = ("snapshot", "queue_evaluation", "copy_to_host")


@contextlib.contextmanager
def timing(module, seconds: dict, **names: str):
    """Within the block, ``module.<function>`` adds its host seconds to ``seconds[name]`` for each
    ``function=name``."""

    def timed(function, name):
        def run(*args, **kwargs):
            begun = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - begun

        return run

    with contextlib.ExitStack() as patches:
        for function, name in names.items():
            timed_function = timed(getattr(module, function), name)
            patches.enter_context(mock.patch.object(module, function, timed_function))
        yield


def host_seconds(evaluator) -> dict:
    """Median host seconds per timed epoch (the warm-up epoch left out)."""
    rows = evaluator.host[1:] or evaluator.host
    names = ("queue_training", "wait_for_evaluation", "rest_of_submit", *SUBMIT_PARTS)
    return {name: statistics.median(r[i] for r in rows) for i, name in enumerate(names)}


def workflow_network(device: torch.device) -> dict:
    """The convolutions' forms the workflow trains with on ``device`` (its ``auto``: the Triton
    epilogues and first convolution on CUDA where Triton is installed)."""
    settings = Settings(epochs=1, batch_size=64, lr=0.01, conv_bias="auto", first_conv="auto")
    resolved = resolve_triton_settings(settings, device)
    return {"conv_bias": resolved.conv_bias, "first_conv": resolved.first_conv}


def k_runs(bench: Bench, k: int, **network):
    """One epoch of K graphed runs (seeds 0 .. K-1; ``network``: AlexNet's conv_bias and
    first_conv), two callables over the same runs: one after the other on the current stream,
    and side by side, each run on its own stream."""
    device = bench.device
    epochs = [
        bench.fast_epoch(graphed=device.type == "cuda", seed=i, **network)[0] for i in range(k)
    ]

    def one_after_the_other():
        return [e() for e in epochs]

    if device.type != "cuda":
        return one_after_the_other, one_after_the_other
    streams = [torch.cuda.Stream(device) for _ in epochs]

    def side_by_side():
        outer = torch.cuda.current_stream(device)
        for stream, e in zip(streams, epochs, strict=True):
            stream.wait_stream(outer)
            with torch.cuda.stream(stream):
                e()
        for stream in streams:
            outer.wait_stream(stream)

    return one_after_the_other, side_by_side


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--eval-images", type=int, default=16000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--side-by-side",
        type=lambda text: [int(k) for k in text.split(",")],
        default=[2, 6],
        help="numbers of runs trained side by side on their own streams (comma-separated)",
    )
    a = parser.parse_args(argv)
    common = [f"--device={a.device}", f"--width={a.width}", f"--images={a.images}"]
    common += [f"--eval-images={a.eval_images}", f"--epochs={a.epochs}"]
    bench = Bench(throughput_args(common + ["--eval-batch-sizes=5000"]))
    small = Bench(throughput_args(common + ["--eval-batch-sizes=1000"]))
    device = bench.device

    # name: (bench, overlap, training stream priority, evaluation stream priority)
    variants = {"inline": (bench, False, -1, 0), "overlapped": (bench, True, -1, 0)}
    if device.type == "cuda":
        variants |= {
            "overlapped_same_priority": (bench, True, 0, 0),
            "overlapped_evaluation_first": (bench, True, 0, -1),
            "overlapped_training_on_default_stream": (bench, True, None, 0),
            "overlapped_eval_batch_1000": (small, True, -1, 0),
        }
    schedules = {}
    for name, (b, overlap, train_priority, eval_priority) in variants.items():
        cls = variant(EpochEvaluator, train_priority, eval_priority)
        seconds = b.evaluated_epochs(overlap, cls)
        trace = traced(lambda start, b=b, o=overlap, c=cls: b.evaluated_epochs(o, c, start), device)
        if name != "overlapped":
            for stream in trace["streams"].values():
                stream.pop("top_kernels_seconds")
        schedules[name] = {
            "epoch_seconds": seconds,
            "host_seconds_per_epoch": host_seconds(cls.made[0]),
            "traced_epoch_seconds": trace.get("span_seconds", 0.0) / a.epochs,
            "trace": trace,
        }
    side, network = {}, workflow_network(device)
    for k in a.side_by_side:
        one_after_the_other, side_by_side = k_runs(bench, k, **network)
        alone = time_loop(one_after_the_other, device, a.epochs)
        together = time_loop(side_by_side, device, a.epochs)
        side[str(k)] = {
            "one_after_the_other": alone,
            "side_by_side": together,
            "side_by_side_gain": alone / together,
            "trace": traced(lambda start, f=side_by_side: time_loop(f, device, 2, start), device),
        }
    two = side.get("2")
    record = record_header("overlap_probe", device) | {
        "width": a.width,
        "images": a.images,
        "eval_images": a.eval_images,
        "timed_epochs": a.epochs,
        "precision": bench.precision,
        "evaluated_epoch_seconds": {k: v["epoch_seconds"] for k, v in schedules.items()},
        "eval_overlap_gain": schedules["inline"]["epoch_seconds"]
        / schedules["overlapped"]["epoch_seconds"],
        "schedules": schedules,
        # K runs' epochs, one after the other and side by side on K streams (K: "2", "6"), with
        # the workflow's convolution forms (the records up to c87efcd, whose two-run keys the
        # record repeats below for K = 2, trained with PyTorch's forms)
        "runs_side_by_side": side,
        "runs_side_by_side_network": network,
    }
    if two:  # the keys of the records before K runs (b1d33d5, c87efcd)
        record |= {
            "two_runs_epoch_seconds": {
                key: two[key] for key in ("one_after_the_other", "side_by_side")
            },
            "two_runs_side_by_side_gain": two["side_by_side_gain"],
            "two_runs_side_by_side_trace": two["trace"],
        }
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"overlap_probe_{device.type}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
