"""Does the overlapped evaluation overlap? A GPU probe of what two CUDA streams get from one GPU
while one of them trains a batch-64 run.

    python benchmarks/overlap_probe.py --device cuda --out DIR

It measures, on the workflow's own parts (the throughput benchmark's ``Bench``), seconds per
paper epoch trained and evaluated:

- ``inline``: evaluation after each epoch, on the training stream;
- ``overlapped``: ``training.eval_overlap`` as the workflow runs it (evaluation on a second
  stream, training on a high-priority one);
- ``overlapped_same_priority``: the same with both streams at the default priority;
- ``overlapped_eval_batch_1000``: evaluation in batches of 1,000 instead of 5,000;

and seconds per epoch of two graphed training runs one after the other and side by side on two
streams. For the overlapped schedule and the two runs side by side it records a kernel trace
(``torch.profiler``) and reports, per stream, the time its kernels were running and the time the
two streams' kernels ran at the same moment: concurrency without a shorter epoch means the GPU's
SMs were already full; no concurrency means the schedule serialised them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from records import record_header
from train_throughput import Bench, _sync, time_loop
from train_throughput import parse_args as throughput_args

from hw5repro import evaluation


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
        # with two streams, the time both ran; with more, a lower bound of it
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


class SamePriority(evaluation.EpochEvaluator):
    """The overlapped evaluator with its training stream at the default priority."""

    def __init__(self, runs, device, overlap):
        super().__init__(runs, device, overlap)
        if self.train_stream is not None:
            self.train_stream = torch.cuda.Stream(device)


def two_runs(bench: Bench, side_by_side: bool):
    """One epoch of two graphed runs (seeds 0 and 1): one after the other on the current stream,
    or side by side, each on its own stream (a callable)."""
    device = bench.device
    epochs = [bench.fast_epoch(graphed=device.type == "cuda", seed=i)[0] for i in range(2)]
    if not side_by_side or device.type != "cuda":
        return lambda: [e() for e in epochs]
    streams = [torch.cuda.Stream(device) for _ in epochs]

    def epoch():
        outer = torch.cuda.current_stream(device)
        for stream, e in zip(streams, epochs, strict=True):
            stream.wait_stream(outer)
            with torch.cuda.stream(stream):
                e()
        for stream in streams:
            outer.wait_stream(stream)

    return epoch


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--eval-images", type=int, default=16000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    a = parser.parse_args(argv)
    common = [f"--device={a.device}", f"--width={a.width}", f"--images={a.images}"]
    common += [f"--eval-images={a.eval_images}", f"--epochs={a.epochs}"]
    bench = Bench(throughput_args(common + ["--eval-batch-sizes=5000"]))
    small = Bench(throughput_args(common + ["--eval-batch-sizes=1000"]))
    device = bench.device

    epoch_seconds = {
        "inline": bench.evaluated_epochs(overlap=False),
        "overlapped": bench.evaluated_epochs(overlap=True),
    }
    if device.type == "cuda":
        epoch_seconds["overlapped_same_priority"] = bench.evaluated_epochs(True, SamePriority)
        epoch_seconds["overlapped_eval_batch_1000"] = small.evaluated_epochs(overlap=True)
    two = {
        "one_after_the_other": time_loop(two_runs(bench, False), device, a.epochs),
        "side_by_side": time_loop(two_runs(bench, True), device, a.epochs),
    }
    traces = {
        "overlapped": traced(
            lambda start: bench.evaluated_epochs(True, before_timing=start), device
        ),
        "two_runs_side_by_side": traced(
            lambda start: time_loop(two_runs(bench, True), device, 2, start), device
        ),
    }
    record = record_header("overlap_probe", device) | {
        "width": a.width,
        "images": a.images,
        "eval_images": a.eval_images,
        "timed_epochs": a.epochs,
        "precision": bench.precision,
        "evaluated_epoch_seconds": epoch_seconds,
        "eval_overlap_gain": epoch_seconds["inline"] / epoch_seconds["overlapped"],
        "two_runs_epoch_seconds": two,
        "two_runs_side_by_side_gain": two["one_after_the_other"] / two["side_by_side"],
        "traces": traces,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"overlap_probe_{device.type}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
