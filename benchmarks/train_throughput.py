"""Side-by-side training throughput: the seed's textbook loop vs the fast loop, same device,
model and batch size. Writes a JSON record under benchmarks/results/.

    python benchmarks/train_throughput.py --width 0.125 --images 2048 --epochs 3       # CPU
    python benchmarks/train_throughput.py --device cuda --width 1 --images 6000 --epochs 5

Throughput is measured on random MNIST-shaped data (the speed of a step does not depend on pixel
values); the first epoch of each loop is a warm-up and is not timed. On a GPU the record also gives
the achieved TFLOP/s of the fast loop (model FLOPs from torch.utils.flop_counter) and its share of
the device's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from hw5repro.device import device_name, resolve_channels_last, resolve_device, resolve_precision
from hw5repro.fused import FusedAlexNet, fused_minibatch_loss
from hw5repro.model import AlexNet, count_parameters
from hw5repro.reference_training import seed_style_epoch
from hw5repro.runset import evaluate
from hw5repro.steps import EagerStep, GraphedStep, batch_sizes, minibatch_loss, run_epoch

#: Dense bf16 tensor-core peak (FLOP/s) of common training GPUs, by a substring of their name.
BF16_PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


def flops_per_image(model, device, batch: int = 64) -> float:
    """Forward + backward FLOPs of one training image, counted by torch.utils.flop_counter."""
    x = torch.rand(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_loop(step_epoch, device, epochs: int) -> float:
    """Seconds per epoch over ``epochs`` timed epochs after one warm-up epoch."""
    step_epoch()
    _sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        step_epoch()
    _sync(device)
    return (time.perf_counter() - start) / epochs


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per loop")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--eval-batch-sizes",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[1000],
        help="comma-separated evaluation batch sizes to time, e.g. 1000,5000",
    )
    parser.add_argument(
        "--eval-images", type=int, default=16_000, help="6,000 train + 10,000 test at paper scale"
    )
    parser.add_argument("--fused", type=int, default=0, help="also time K runs fused in one step")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    channels_last = resolve_channels_last("auto", device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.images, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (args.images,), generator=gen)

    def autocast():
        if precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    # Seed-style: DataLoader over host tensors, fp32, per-step .item().
    torch.manual_seed(0)
    seed_model = AlexNet(width=args.width).to(device)
    seed_opt = torch.optim.SGD(seed_model.parameters(), lr=0.01)
    seed_s = time_loop(
        lambda: seed_style_epoch(seed_model, seed_opt, x, y, args.batch_size, device),
        device,
        args.epochs,
    )
    # Fast: data resident on the device, device-side permutation, no per-step sync; eager steps,
    # and on CUDA the same step captured in CUDA graphs (what the workflow uses there).
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    xd, yd = x.to(device, memory_format=fmt), y.to(device)
    perm_gen = torch.Generator(device=device).manual_seed(0)

    def fast_loop(graphed: bool):
        torch.manual_seed(0)
        model = AlexNet(width=args.width).to(device, memory_format=fmt)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        step = EagerStep(model, opt, minibatch_loss(model, xd, yd, autocast))
        if graphed:
            step = GraphedStep(step, batch_sizes(args.images, args.batch_size))
        seconds = time_loop(
            lambda: run_epoch(step, args.images, args.batch_size, perm_gen), device, args.epochs
        )
        return seconds, model

    eager_s, fast_model = fast_loop(graphed=False)
    graphed_s = fast_loop(graphed=True)[0] if device.type == "cuda" else None
    fast_s = min(eager_s, graphed_s or eager_s)

    def fused_loop(graphed: bool, fmt=fmt) -> float:
        """K runs (own weights, own batch of ``batch_size``) fused in one network; seconds per
        epoch of all K runs."""
        k = args.fused
        models = []
        for i in range(k):
            torch.manual_seed(i)
            models.append(AlexNet(width=args.width))
        model = FusedAlexNet(models).to(device, memory_format=fmt)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        xk = x.squeeze(1).expand(k, *x.shape[:1], 28, 28).to(device)
        yk = y.expand(k, -1).to(device)
        step = EagerStep(model, opt, fused_minibatch_loss(model, xk, yk, autocast, fmt))
        if graphed:
            step = GraphedStep(step, batch_sizes(args.images, args.batch_size), runs=k)
        gens = [torch.Generator(device=device).manual_seed(i) for i in range(k)]
        return time_loop(
            lambda: run_epoch(step, args.images, args.batch_size, gens), device, args.epochs
        )

    fused = {}
    if args.fused > 1:
        fused["fused_runs"] = args.fused
        fused["fused_eager_images_per_s"] = args.fused * args.images / fused_loop(graphed=False)
        if device.type == "cuda":
            fused["fused_graphed_images_per_s"] = (
                args.fused * args.images / fused_loop(graphed=True)
            )
            fused["fused_graphed_nchw_images_per_s"] = (
                args.fused * args.images / fused_loop(graphed=True, fmt=torch.contiguous_format)
            )
        best = max(v for key, v in fused.items() if key.endswith("images_per_s"))
        fused["fused_vs_one_separate_job"] = best / (args.images / fast_s)
    # Evaluation (eval mode, every image) of the 6,000 training + 10,000 test images of the
    # paper-scale run, per epoch, at each evaluation batch size asked for.
    eval_x = torch.rand(args.eval_images, 1, 28, 28, device=device).to(memory_format=fmt)
    eval_y = torch.randint(0, 10, (args.eval_images,), device=device)
    eval_s = {
        size: time_loop(
            lambda size=size: evaluate(fast_model, eval_x, eval_y, size, autocast),
            device,
            args.epochs,
        )
        for size in args.eval_batch_sizes
    }

    flops = flops_per_image(AlexNet(width=args.width).to(device), device)
    seed_ips, fast_ips = args.images / seed_s, args.images / fast_s
    record = {
        "benchmark": "train_throughput",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "width": args.width,
        "parameters": count_parameters(fast_model),
        "images": args.images,
        "batch_size": args.batch_size,
        "timed_epochs": args.epochs,
        "precision_fast": precision,
        "channels_last_fast": channels_last,
        "precision_seed_style": "fp32",
        "seed_style_images_per_s": seed_ips,
        "eager_images_per_s": args.images / eager_s,
        "graphed_images_per_s": args.images / graphed_s if graphed_s else None,
        "fast_images_per_s": fast_ips,
        "speedup": fast_ips / seed_ips,
        "eval_images_per_s": {size: args.eval_images / sec for size, sec in eval_s.items()},
        "eval_seconds_per_paper_epoch": {
            size: 16_000 / args.eval_images * sec for size, sec in eval_s.items()
        },
        "train_seconds_per_paper_epoch": 6_000 / fast_ips,
        **fused,
        "train_flops_per_image": flops,
        "fast_tflops_per_s": fast_ips * flops / 1e12,
    }
    if device.type == "cuda":
        peak = next((v for k, v in BF16_PEAK.items() if k in record["device_name"]), None)
        record["bf16_peak_tflops_per_s"] = peak / 1e12 if peak else None
        record["share_of_bf16_peak"] = fast_ips * flops / peak if peak else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = (
        f"train_throughput_{device.type}_w{args.width:g}{'_fused' if args.fused > 1 else ''}.json"
    )
    (out / name).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
