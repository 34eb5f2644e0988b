"""Side-by-side training throughput: the seed's textbook loop vs the fast loop, same device,
model and batch size. Writes a JSON record under benchmarks/results/.

    python benchmarks/train_throughput.py --width 0.125 --images 2048 --epochs 3       # CPU
    python benchmarks/train_throughput.py --device cuda --width 1 --images 6000 --epochs 5
    python benchmarks/train_throughput.py --fused 2 --separate --threads 2  # fused vs separate jobs

Throughput is measured on random MNIST-shaped data (the speed of a step does not depend on pixel
values); the first epoch of each loop is a warm-up and is not timed. On a GPU the record also gives
the achieved TFLOP/s of the fast loop (model FLOPs from torch.utils.flop_counter) and its share of
the device's dense bf16 peak.

With ``--fused K --separate`` the same K runs are also trained as K separate jobs, as
``snakemake --cores N`` runs them side by side on one machine: K processes of this script (worker
mode ``--job I``), started together, each training one run with the workflow's loop on the same
device (CUDA-graph steps on a GPU, eager steps on the CPU) with ``threads // K`` threads (at least
1), so that they use the CPU cores the one fused process uses. Each job sets up and runs its
warm-up epoch, then waits at a common start; released together, each times its own epochs. The
primary number, ``separate_images_per_s``, is the work of all K jobs over the wall time from the
common start to the end of the last job (K * images * epochs / wall); the sum of the jobs' own
images/s (``separate_summed_images_per_s``) is at least as large and equal to it only when the
jobs overlap perfectly. ``fused_vs_separate`` is ``fused_images_per_s`` (the workflow's fused
loop: graphed on CUDA, eager on the CPU) over the primary number. On CUDA with Triton the K fused
runs are also timed with the Triton epilogues (``fused_triton_bias_images_per_s``), against one
job with them (``fused_triton_bias_vs_triton_bias``). The K runs are also timed side by side
(``training.group_form: streams``: each run its plain network, each run's step on its own CUDA
stream of one graph; on a CPU one after another): ``streams_images_per_s`` and, on CUDA with
Triton, with the single run's Triton kernels (``streams_triton_images_per_s``) against one job
with them (``streams_triton_vs_one_job``) and against the fused runs with them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from records import record_header
from torch.utils.flop_counter import FlopCounterMode

import hw5repro
from hw5repro.device import resolve_channels_last, resolve_device, resolve_precision
from hw5repro.eval_kernels import triton_available
from hw5repro.evaluation import EpochEvaluator, evaluate
from hw5repro.fused import FusedAlexNet, fused_minibatch_loss
from hw5repro.model import CONV_BIAS, AlexNet, count_parameters
from hw5repro.reference_training import seed_style_epoch
from hw5repro.runset import make_runs
from hw5repro.side_by_side import SideBySideAlexNets, side_by_side_loss
from hw5repro.steps import EagerStep, GraphedStep, batch_sizes, minibatch_loss, run_epoch
from hw5repro.training import RunData, Settings, make_step

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


def time_loop(step_epoch, device, epochs: int, before_timing=None) -> float:
    """Seconds per epoch over ``epochs`` timed epochs after one warm-up epoch; ``before_timing``
    (a separate job's wait at the common start) is called between the two."""
    step_epoch()
    _sync(device)
    if before_timing:
        before_timing()
    start = time.perf_counter()
    for _ in range(epochs):
        step_epoch()
    _sync(device)
    return (time.perf_counter() - start) / epochs


class Bench:
    """What the loops of one measurement share: settings, device, precision, memory format and
    the random MNIST-shaped data (the same in every process: a generator seeded 0)."""

    def __init__(self, args):
        self.args = args
        self.device = resolve_device(args.device)
        self.precision = resolve_precision(args.precision, self.device)
        self.channels_last = resolve_channels_last("auto", self.device)
        self.fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        gen = torch.Generator().manual_seed(0)
        self.x = torch.rand(args.images, 1, 28, 28, generator=gen)
        self.y = torch.randint(0, 10, (args.images,), generator=gen)
        self.xd = self.yd = None

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    def fast_epoch(self, graphed: bool, seed: int = 0, **network):
        """One run (model and batch order seeded ``seed``; ``network``: AlexNet's conv_bias,
        first_conv) with the workflow's fast loop: data resident on the device, device-side
        permutation, no per-step sync; eager steps, or the same step captured in CUDA graphs
        (what the workflow uses on CUDA). Returns the epoch (a callable) and the model."""
        a, device = self.args, self.device
        if self.xd is None:
            if device.type == "cuda":
                torch.backends.cudnn.benchmark = True
            self.xd, self.yd = self.x.to(device, memory_format=self.fmt), self.y.to(device)
        torch.manual_seed(seed)
        model = AlexNet(width=a.width, **network).to(device, memory_format=self.fmt)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        step = EagerStep(model, opt, minibatch_loss(model, self.xd, self.yd, self.autocast))
        if graphed:
            step = GraphedStep(step, batch_sizes(a.images, a.batch_size))
        gen = torch.Generator(device=device).manual_seed(seed)
        return (lambda: run_epoch(step, a.images, a.batch_size, gen)), model

    def fused_epoch(self, graphed: bool, fmt=None, form: str = "fused", **network):
        """K = ``--fused`` runs (own weights, own batch of ``batch_size``; run i seeded i, as the
        separate job i; ``network``: AlexNet's conv_bias, first_conv) in one job, in the form of
        ``training.group_form``: fused in one network, or side by side, each run's step on its
        own CUDA stream; one epoch of all K runs (a callable)."""
        a, device, k = self.args, self.device, self.args.fused
        fmt = fmt or self.fmt
        models = []
        for i in range(k):
            torch.manual_seed(i)
            models.append(AlexNet(width=a.width, **network))
        if form == "fused":
            model = FusedAlexNet(models).to(device, memory_format=fmt)
            xk = self.x.squeeze(1).expand(k, *self.x.shape[:1], 28, 28).to(device)
            yk = self.y.expand(k, -1).to(device)
            loss = fused_minibatch_loss(model, xk, yk, self.autocast, fmt)
        else:
            model = SideBySideAlexNets([m.to(device, memory_format=fmt) for m in models])
            xd, yd = self.x.to(device, memory_format=fmt), self.y.to(device)
            loss = side_by_side_loss(model, [xd] * k, [yd] * k, self.autocast)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        step = EagerStep(model, opt, loss)
        if graphed:
            step = GraphedStep(step, batch_sizes(a.images, a.batch_size), runs=k)
        gens = [torch.Generator(device=device).manual_seed(i) for i in range(k)]
        return lambda: run_epoch(step, a.images, a.batch_size, gens)

    def evaluated_epochs(
        self,
        overlap: bool,
        evaluator=EpochEvaluator,
        before_timing=None,
        **training,
    ):
        """Seconds per epoch of one run trained and evaluated by the workflow's own parts
        (make_runs, make_step, EpochEvaluator): ``--images`` training images, and every epoch
        those plus ``--eval-images`` minus them as the test set evaluated, inline or overlapped
        with the next epoch's training (``evaluator``, ``before_timing``: for probes;
        ``training``: settings other than the defaults, e.g. conv_bias)."""
        a, device = self.args, self.device
        gen = torch.Generator().manual_seed(1)
        n_test = max(a.eval_images - a.images, 1)
        data = RunData(
            self.x,
            self.y,
            torch.zeros(a.images, dtype=torch.bool),
            torch.rand(n_test, 1, 28, 28, generator=gen),
            torch.randint(0, 10, (n_test,), generator=gen),
        )
        settings = Settings(
            epochs=1,
            batch_size=a.batch_size,
            lr=0.01,
            width=a.width,
            device=str(device),
            precision=self.precision,
            eval_batch_size=max(a.eval_batch_sizes),
            **training,
        )
        runs = make_runs([data], settings, [0], device, self.fmt, self.autocast)
        step = make_step(settings, runs, device)
        evaluator = evaluator(runs, device, overlap)

        def epoch():
            started = evaluator.start()
            losses = run_epoch(step, runs.n, a.batch_size, runs.generators)
            evaluator.submit(0, started, losses, with_test=True)

        with evaluator.training():
            seconds = time_loop(epoch, device, a.epochs, before_timing)
        evaluator.drain()
        return seconds


# A separate job's lines to the benchmark on its stdout (anything else it prints is passed on).
READY, RESULT = "separate-job ready", "separate-job result "


def separate_job(args) -> dict:
    """Worker mode (``--job I``): train run I alone with the workflow's loop on this device,
    report ready after the warm-up epoch, wait for the common start (a line on stdin), time the
    epochs and report them as one JSON line."""
    bench = Bench(args)
    graphed = bench.device.type == "cuda"
    epoch, _ = bench.fast_epoch(graphed=graphed, seed=args.job)

    def wait_for_start():
        print(READY, flush=True)
        sys.stdin.readline()

    seconds = time_loop(epoch, bench.device, args.epochs, before_timing=wait_for_start)
    result = {
        "job": args.job,
        "pid": os.getpid(),
        "threads": torch.get_num_threads(),
        "graphed": graphed,
        "seconds_per_epoch": seconds,
    }
    print(RESULT + json.dumps(result), flush=True)
    return result


def _read_until(proc, prefix: str) -> str:
    for line in proc.stdout:
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
        sys.stderr.write(line)
    raise RuntimeError(f"separate job ended (rc {proc.wait()}) before {prefix.strip()!r}")


def separate_jobs(bench: Bench, k: int, threads: int) -> dict:
    """Runs 0..K-1 as K separate jobs side by side (see the module docstring); the record's
    ``separate_*`` fields."""
    a = bench.args
    cmd = [sys.executable, __file__, "--device", str(bench.device), "--width", str(a.width)]
    cmd += ["--images", str(a.images), "--batch-size", str(a.batch_size)]
    cmd += ["--epochs", str(a.epochs), "--precision", bench.precision, "--threads", str(threads)]
    workflow_dir = str(Path(hw5repro.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([workflow_dir, os.getenv("PYTHONPATH", "")])}
    procs = []
    try:
        for i in range(k):
            procs.append(
                subprocess.Popen(
                    [*cmd, "--job", str(i)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        for proc in procs:
            _read_until(proc, READY)
        start = time.perf_counter()
        for proc in procs:  # the common start
            proc.stdin.write("go\n")
            proc.stdin.flush()
        jobs = [json.loads(_read_until(proc, RESULT)) for proc in procs]
        wall = time.perf_counter() - start
        for proc in procs:
            if proc.wait() != 0:
                raise RuntimeError(f"separate job exited with rc {proc.returncode}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdin.close()
            proc.stdout.close()
    job_ips = [a.images / job["seconds_per_epoch"] for job in jobs]
    return {
        "separate_jobs": k,
        "separate_loop": "graphed" if jobs[0]["graphed"] else "eager",
        "separate_threads_per_job": [job["threads"] for job in jobs],
        "separate_job_images_per_s": job_ips,
        "separate_wall_seconds": wall,
        "separate_images_per_s": k * a.images * a.epochs / wall,
        "separate_summed_images_per_s": sum(job_ips),
    }


def parse_args(argv=None):
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
    parser.add_argument(
        "--separate",
        action="store_true",
        help="also time the --fused K runs as K separate jobs (processes) side by side",
    )
    parser.add_argument("--job", type=int, default=None, help=argparse.SUPPRESS)  # worker mode
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    if args.separate and args.fused < 2:
        parser.error("--separate needs --fused K with K >= 2")
    return args


#: How much faster per evaluated epoch a setting must be than the default for gpu_check.sh to
#: give it to the workflow and the sweep (in one call, schedules doing the same work measured
#: within 0.4 % of each other: b1d33d5-overlap-probe).
FASTER_BY = 1.02


def fastest_conv_bias(record: dict, margin: float = FASTER_BY) -> str:
    """The training.conv_bias that trained and evaluated an epoch fastest, if it beat ``add`` by
    more than ``margin`` (else ``add``), which benchmarks/gpu_check.sh prints."""
    gains = {form: record.get(f"{form}_bias_vs_add_evaluated_epoch") or 0 for form in CONV_BIAS[1:]}
    best = max(gains, key=gains.get)
    return best if gains[best] > margin else "add"


def triton_candidate(name: str, device, timings, keys: list[str]) -> dict:
    """``timings()`` of a Triton candidate, on CUDA: its record keys (``name`` + each of ``keys``)
    None where it cannot run, and ``<name>_error`` saying why (no Triton; the first line of an
    error, so that a failing kernel costs the record its own lines only; the CUDA tests of the
    same check fail on it)."""
    record = {name + key: None for key in keys}
    if device.type != "cuda":
        return record
    if not triton_available():
        return record | {f"{name}_error": "Triton is not installed"}
    try:
        return record | timings()
    except Exception as err:  # noqa: BLE001 - recorded, and printed by gpu_check.sh
        return record | {
            f"{name}_error": f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}"
        }


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.job is not None:
        return separate_job(args)
    bench = Bench(args)
    device, fmt, x, y = bench.device, bench.fmt, bench.x, bench.y

    # Seed-style: DataLoader over host tensors, fp32, per-step .item().
    torch.manual_seed(0)
    seed_model = AlexNet(width=args.width).to(device)
    seed_opt = torch.optim.SGD(seed_model.parameters(), lr=0.01)
    seed_s = time_loop(
        lambda: seed_style_epoch(seed_model, seed_opt, x, y, args.batch_size, device),
        device,
        args.epochs,
    )
    # Fast: eager steps and, on CUDA, the step replayed from CUDA graphs.
    epoch, fast_model = bench.fast_epoch(graphed=False)
    eager_s = time_loop(epoch, device, args.epochs)
    graphed_s = None
    if device.type == "cuda":
        graphed_s = time_loop(bench.fast_epoch(graphed=True)[0], device, args.epochs)
    fast_s = min(eager_s, graphed_s or eager_s)

    def fused_ips(graphed: bool, fmt=fmt, **network) -> float:
        return (
            args.fused
            * args.images
            / time_loop(bench.fused_epoch(graphed, fmt, **network), device, args.epochs)
        )

    fused = {}
    if args.fused > 1:
        fused["fused_runs"] = args.fused
        fused["fused_threads"] = torch.get_num_threads()
        fused["fused_eager_images_per_s"] = fused_ips(graphed=False)
        if device.type == "cuda":
            fused["fused_graphed_images_per_s"] = fused_ips(graphed=True)
            fused["fused_graphed_nchw_images_per_s"] = fused_ips(
                graphed=True, fmt=torch.contiguous_format
            )
        # the workflow's fused loop: graphed on CUDA, eager on the CPU
        fused["fused_images_per_s"] = fused.get(
            "fused_graphed_images_per_s", fused["fused_eager_images_per_s"]
        )
        best = max(v for key, v in fused.items() if key.endswith("images_per_s"))
        fused["fused_vs_one_separate_job"] = best / (args.images / fast_s)
    if args.separate:
        threads = max(1, torch.get_num_threads() // args.fused)
        fused.update(separate_jobs(bench, args.fused, threads))
        fused["fused_vs_separate"] = fused["fused_images_per_s"] / fused["separate_images_per_s"]
        fused["fused_vs_separate_summed"] = (
            fused["fused_images_per_s"] / fused["separate_summed_images_per_s"]
        )
    # Evaluation (eval mode, every image) of the 6,000 training + 10,000 test images of the
    # paper-scale run, per epoch, at each evaluation batch size asked for.
    eval_x = torch.rand(args.eval_images, 1, 28, 28, device=device).to(memory_format=fmt)
    eval_y = torch.randint(0, 10, (args.eval_images,), device=device)
    eval_s = {
        size: time_loop(
            lambda size=size: evaluate(fast_model, eval_x, eval_y, size, bench.autocast),
            device,
            args.epochs,
        )
        for size in args.eval_batch_sizes
    }
    # One epoch of training and evaluation with the workflow's parts: evaluation inline, and
    # (CUDA) on a second stream while the next epoch trains (training.eval_overlap).
    evaluated = {"inline": bench.evaluated_epochs(overlap=False)}
    if device.type == "cuda":
        evaluated["overlapped"] = bench.evaluated_epochs(overlap=True)
    # The other ways of adding the convolutions' biases (training.conv_bias: gemm, after_pool; on
    # the CPU the network is the plain one, so there the ratios only show the noise; triton, the
    # Triton epilogues, on CUDA only): the fast loop, evaluation at the largest batch, and the
    # evaluated epoch, against the default (add).
    size = max(args.eval_batch_sizes)

    def network_variant(name: str, default: str, **setting) -> dict:
        """The network with ``setting`` (a value of conv_bias or first_conv) against the default
        one (``default``, its value's name): ``<name>_images_per_s``, ``<name>_vs_<default>``,
        ``..._eval`` and ``..._evaluated_epoch``."""
        inline = bench.evaluated_epochs(overlap=False, **setting)
        epoch, model = bench.fast_epoch(graphed=graphed_s is not None, **setting)
        ips = args.images / time_loop(epoch, device, args.epochs)
        variant_eval_s = time_loop(
            lambda: evaluate(model, eval_x, eval_y, size, bench.autocast), device, args.epochs
        )
        evaluated[f"inline_{name}"] = inline
        return {
            f"{name}_images_per_s": ips,
            f"{name}_vs_{default}": ips * fast_s / args.images,
            f"{name}_eval_images_per_s": args.eval_images / variant_eval_s,
            f"{name}_vs_{default}_eval": eval_s[size] / variant_eval_s,
            f"{name}_vs_{default}_evaluated_epoch": evaluated["inline"] / inline,
        }

    bias_forms = {}
    for form in ("gemm", "after_pool"):
        bias_forms |= network_variant(f"{form}_bias", "add", conv_bias=form)
    keys = ["_vs_add", "_vs_add_eval", "_vs_add_evaluated_epoch"]
    bias_forms |= triton_candidate(
        "triton_bias",
        device,
        lambda: network_variant("triton_bias", "add", conv_bias="triton"),
        keys,
    )

    # The --fused K runs with the Triton epilogues (conv_bias: triton; CUDA only), the workflow's
    # fused loop, against one job with them (six jobs side by side share the GPU by time slices:
    # together they train at one job's rate, c87efcd-triton-kernels).
    def fused_triton():
        ips = fused_ips(graphed=graphed_s is not None, conv_bias="triton")
        one_job = bias_forms.get("triton_bias_images_per_s")  # None: that candidate failed
        return {
            "fused_triton_bias_images_per_s": ips,
            "fused_triton_bias_vs_triton_bias": ips / one_job if one_job else None,
        }

    # The same K runs side by side (training.group_form: streams), each its plain network with
    # the single run's Triton epilogues and first convolution (the workflow's auto on CUDA), each
    # run's step on its own CUDA stream of one graph, against one job with those kernels.
    def streams_triton():
        triton = dict(conv_bias="triton", first_conv="triton")
        ips = fused_ips(graphed=graphed_s is not None, form="streams", **triton)
        epoch, _ = bench.fast_epoch(graphed=graphed_s is not None, **triton)
        one_job = args.images / time_loop(epoch, device, args.epochs)
        return {
            "streams_triton_images_per_s": ips,
            "streams_triton_vs_one_job": ips / one_job,
            "streams_triton_vs_fused_triton_bias": (
                ips / bias_forms["fused_triton_bias_images_per_s"]
                if bias_forms.get("fused_triton_bias_images_per_s")
                else None
            ),
        }

    if args.fused > 1:
        bias_forms |= triton_candidate(
            "fused_triton_bias", device, fused_triton, ["_images_per_s", "_vs_triton_bias"]
        )
        # the side-by-side form with PyTorch's passes, on every device (on a CPU one run after
        # another: the ratio shows the noise), and with the Triton kernels on CUDA
        fused["streams_images_per_s"] = fused_ips(graphed=graphed_s is not None, form="streams")
        fused["streams_vs_one_job"] = fused["streams_images_per_s"] * fast_s / args.images
        bias_forms |= triton_candidate(
            "streams_triton",
            device,
            streams_triton,
            ["_images_per_s", "_vs_one_job", "_vs_fused_triton_bias"],
        )

    # Evaluation's epilogues as Triton kernels (training.triton_eval; CUDA only): evaluation at
    # the largest batch and the evaluated epoch, against PyTorch's passes.
    def triton_eval():
        inline = bench.evaluated_epochs(overlap=False, triton_eval=True)
        fast_model.features.fused_eval_epilogues = True
        try:
            seconds = time_loop(
                lambda: evaluate(fast_model, eval_x, eval_y, size, bench.autocast),
                device,
                args.epochs,
            )
        finally:
            fast_model.features.fused_eval_epilogues = False
        evaluated["inline_triton_eval"] = inline
        return {
            "triton_eval_vs_torch_eval": eval_s[size] / seconds,
            "triton_eval_vs_torch_evaluated_epoch": evaluated["inline"] / inline,
        }

    triton = triton_candidate(
        "triton_eval", device, triton_eval, ["_vs_torch_eval", "_vs_torch_evaluated_epoch"]
    )

    # The first convolution as Triton kernels (training.first_conv: triton; CUDA only): the fast
    # loop, evaluation at the largest batch and the evaluated epoch, against cuDNN's.
    first_conv = triton_candidate(
        "triton_first_conv",
        device,
        lambda: network_variant("triton_first_conv", "torch", first_conv="triton"),
        ["_vs_torch", "_vs_torch_eval", "_vs_torch_evaluated_epoch"],
    )

    flops = flops_per_image(AlexNet(width=args.width).to(device), device)
    seed_ips, fast_ips = args.images / seed_s, args.images / fast_s
    record = record_header("train_throughput", device) | {
        "threads": torch.get_num_threads(),
        "width": args.width,
        "parameters": count_parameters(fast_model),
        "images": args.images,
        "batch_size": args.batch_size,
        "timed_epochs": args.epochs,
        "precision_fast": bench.precision,
        "channels_last_fast": bench.channels_last,
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
        # training + evaluation of --images + (--eval-images - --images) test images, per epoch
        "evaluated_epoch_seconds": evaluated,
        "eval_overlap_gain": evaluated["inline"] / evaluated.get("overlapped", evaluated["inline"]),
        **bias_forms,
        "fastest_conv_bias": fastest_conv_bias(bias_forms),
        **triton,
        # Triton's epilogues where they beat PyTorch's passes by more than 2 % per evaluated epoch
        "fastest_triton_eval": (triton["triton_eval_vs_torch_evaluated_epoch"] or 0) > FASTER_BY,
        **first_conv,
        # the first convolution in Triton where it beats cuDNN's by more than 2 % likewise
        "fastest_first_conv": "triton"
        if (first_conv["triton_first_conv_vs_torch_evaluated_epoch"] or 0) > FASTER_BY
        else "torch",
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
    kind = ("_fused" if args.fused > 1 else "") + ("_separate" if args.separate else "")
    name = f"train_throughput_{device.type}_w{args.width:g}{kind}.json"
    (out / name).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
