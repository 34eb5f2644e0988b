"""Training throughput: the homework write-up's textbook loop against the workflow's fast loop, on
the same device, model and batch size. Writes a JSON record under benchmarks/results/.

    python benchmarks/train_throughput.py --width 0.125 --images 2048 --epochs 3       # CPU
    python benchmarks/train_throughput.py --device cuda --width 1 --images 6000 --epochs 5

Throughput is measured on random MNIST-shaped data (the speed of a step does not depend on pixel
values); the first epoch of each loop is a warm-up and is not timed. The fast loop is timed eager
and, on CUDA, captured in CUDA graphs with each ``conv_epilogue`` (PyTorch's passes, and the Triton
kernels where Triton is installed); its evaluation pass is timed too. On a GPU the record also
gives the achieved TFLOP/s (model FLOPs from torch.utils.flop_counter) and its share of the
device's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from records import record_header
from seed_style_loop import seed_style_epoch
from torch.utils.flop_counter import FlopCounterMode

from hw5repro.kernels.epilogues import triton_available
from hw5repro.training.device import resolve_device
from hw5repro.training.evaluation import evaluate
from hw5repro.training.loop import autocast_for
from hw5repro.training.model import AlexNet, count_parameters
from hw5repro.training.settings import resolve_precision
from hw5repro.training.steps import EagerStep, GraphedStep, batch_sizes, minibatch_loss, run_epoch

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


def seconds_per_epoch(epoch, device, epochs: int) -> float:
    """Seconds per call of ``epoch`` over ``epochs`` timed calls after one warm-up call."""
    epoch()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / epochs


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per loop")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--eval-batch-size", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    autocast = autocast_for(device, precision)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.images, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (args.images,), generator=gen)
    xd, yd = x.to(device, memory_format=torch.channels_last), y.to(device)

    def model_and_optimizer(**network):
        torch.manual_seed(0)
        model = AlexNet(width=args.width, **network).to(device, memory_format=torch.channels_last)
        return model, torch.optim.SGD(model.parameters(), lr=0.01)

    def fast(graphed: bool, conv_epilogue: str = "torch") -> float:
        """Images/s of the workflow's loop: data on the device, no per-step host sync."""
        model, opt = model_and_optimizer(conv_epilogue=conv_epilogue)
        step = EagerStep(model, opt, minibatch_loss(model, xd, yd, autocast))
        if graphed:
            step = GraphedStep(step, batch_sizes(args.images, args.batch_size))
        order = torch.Generator().manual_seed(0)
        epoch = lambda: run_epoch(step, args.images, args.batch_size, order)  # noqa: E731
        return args.images / seconds_per_epoch(epoch, device, args.epochs)

    seed_model, seed_opt = model_and_optimizer()
    seed_model = seed_model.to(memory_format=torch.contiguous_format)  # the write-up's layout

    def seed_epoch():
        seed_style_epoch(seed_model, seed_opt, x, y, args.batch_size, device)

    seed_ips = args.images / seconds_per_epoch(seed_epoch, device, args.epochs)
    loops = {"eager": fast(graphed=False)}
    if device.type == "cuda":
        loops["graphed"] = fast(graphed=True)
        if triton_available():
            loops["graphed_triton"] = fast(graphed=True, conv_epilogue="triton")
    best = max(loops, key=loops.get)
    eval_model, _ = model_and_optimizer(conv_epilogue="triton" if "triton" in best else "torch")

    def eval_epoch():
        evaluate(eval_model, xd, yd, args.eval_batch_size, autocast)

    eval_s = seconds_per_epoch(eval_epoch, device, args.epochs)
    flops = flops_per_image(AlexNet(width=args.width).to(device), device)
    record = record_header("train_throughput", device) | {
        "threads": torch.get_num_threads(),
        "width": args.width,
        "parameters": count_parameters(eval_model),
        "images": args.images,
        "batch_size": args.batch_size,
        "timed_epochs": args.epochs,
        "precision_fast": precision,
        "precision_seed_style": "fp32",
        "seed_style_images_per_s": seed_ips,
        **{f"{name}_images_per_s": ips for name, ips in loops.items()},
        "fast_loop": best,
        "fast_images_per_s": loops[best],
        "speedup": loops[best] / seed_ips,
        "eval_batch_size": args.eval_batch_size,
        "eval_images_per_s": args.images / eval_s,
        "train_flops_per_image": flops,
        "fast_tflops_per_s": loops[best] * flops / 1e12,
    }
    if device.type == "cuda":
        peak = next((v for k, v in BF16_PEAK.items() if k in record["device_name"]), None)
        record["share_of_bf16_peak"] = loops[best] * flops / peak if peak else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"train_throughput_{device.type}_w{args.width:g}.json"
    (out / name).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
