"""Where the GPU time of the AlexNet goes, layer by layer, and what the tensor cores could do.

For each convolution of the workflow's AlexNet (bf16 autocast, channels_last on CUDA) this times:
- the forward pass at the evaluation batch (``--eval-batch``) and forward + backward at the training
  batch (``--batch``), as TFLOP/s;
- a plain matrix product of the convolution's implicit-GEMM shape (M = batch x output pixels,
  N = output channels, K = input channels x kernel area) in the same dtype: what the tensor cores
  reach for that amount of work, so the gap is the convolution kernels' own inefficiency;
- the whole network (eval forward, and forward + backward of a training batch, eager), to show
  what the convolutions leave to the other layers;
- the passes between the convolutions (bias, ReLU, max-pool) against candidate forms of the
  same computation (``probe_epilogues``);
- horizontal fusion: the grouped convolution of ``--groups`` runs at the training batch (what
  ``hw5repro.fused`` runs) against one ungrouped convolution of ``--groups`` x batch images
  (the ceiling of fusing by stacking batches).

    python benchmarks/conv_efficiency.py --out benchmarks/results/gpu        # on the GPU
    python benchmarks/conv_efficiency.py --device cpu --width 0.125 --batch 4 --eval-batch 8 \
        --groups 2 --repeats 2 --out /tmp/probe                              # a CPU smoke run

``--bounds RECORD`` turns a record into lower bounds on the GPU time of the presets' training
(convolutions only, so every other layer, start-up and the report come on top): per run and
epoch (6,000 training images in batches, 16,000 evaluated) at the measured convolution rates, at
the matrix-product rates of the same shapes, and with training at the stacked-batch rate (the
most horizontal fusion could give), each times the run-epochs of a preset.

    python benchmarks/conv_efficiency.py \
        --bounds benchmarks/results/gpu/a9755f9-sweep-probe-zhang/conv_efficiency_cuda_w1.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from records import record_header

from hw5repro.device import resolve_device
from hw5repro.eval_kernels import kernels_run_on, triton_available
from hw5repro.first_conv import triton_conv2d
from hw5repro.model import AlexNet, add_bias


def conv_layers(width: float) -> list[dict]:
    """Every convolution of the AlexNet with its input size (28x28 MNIST) and whether a max-pool
    follows it."""
    layers, size = [], 28
    for module in AlexNet(width=width).features:
        if isinstance(module, torch.nn.Conv2d):
            (k, _), (pad, _) = module.kernel_size, module.padding
            out = size + 2 * pad - k + 1
            layers.append(
                {
                    "cin": module.in_channels,
                    "cout": module.out_channels,
                    "kernel": k,
                    "padding": pad,
                    "size": size,
                    "out_size": out,
                    "pooled": False,
                }
            )
            size = out
        elif isinstance(module, torch.nn.MaxPool2d):
            layers[-1]["pooled"] = True
            size = (size - module.kernel_size) // module.stride + 1
    return layers


def conv_flops(layer: dict, batch: int) -> int:
    """Multiply-adds x 2 of one forward convolution."""
    return 2 * batch * layer["out_size"] ** 2 * layer["cout"] * layer["cin"] * layer["kernel"] ** 2


class Timer:
    def __init__(self, device: torch.device, repeats: int):
        self.device, self.repeats = device, repeats

    def seconds(self, fn) -> float:
        """Mean seconds per call after warm-up (cuDNN autotuning included there)."""
        for _ in range(3):
            fn()
        self.sync()
        t0 = time.perf_counter()
        for _ in range(self.repeats):
            fn()
        self.sync()
        return (time.perf_counter() - t0) / self.repeats

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def conv_inputs(layer, batch, device, dtype, fmt, groups=1, grad=False, input_grad=None):
    """Random images (or activations) and weights of ``layer`` for a batch, in dtype and format;
    with ``grad`` the weights (and, unless ``input_grad`` is False, the input) need gradients."""
    k, size = layer["kernel"], layer["size"]
    x = torch.randn(batch, layer["cin"] * groups, size, size, device=device)
    input_grad = grad and (layer["cin"] > 1 if input_grad is None else input_grad)
    x = x.to(dtype).contiguous(memory_format=fmt).requires_grad_(input_grad)
    w = torch.randn(layer["cout"] * groups, layer["cin"], k, k, device=device) * 0.01
    return x, w.to(dtype).contiguous(memory_format=fmt).requires_grad_(grad)


def forward_seconds(layer, batch, device, dtype, fmt, timer, conv=F.conv2d) -> float:
    x, w = conv_inputs(layer, batch, device, dtype, fmt)
    with torch.no_grad():
        return timer.seconds(lambda: conv(x, w, padding=layer["padding"]))


def train_seconds(
    layer, batch, device, dtype, fmt, timer, groups=1, input_grad=None, conv=F.conv2d
) -> float:
    """Forward and backward of one training batch (weight gradient; input gradient where the
    layer below needs it: not for the first layer, whose input is the images)."""
    x, w = conv_inputs(layer, batch, device, dtype, fmt, groups, grad=True, input_grad=input_grad)
    out = layer["out_size"]
    grad = torch.randn(batch, layer["cout"] * groups, out, out, device=device).to(dtype)
    grad = grad.contiguous(memory_format=fmt)

    def step():
        conv(x, w, padding=layer["padding"], groups=groups).backward(grad)
        w.grad = x.grad = None

    return timer.seconds(step)


def probe_layer(layer, args, device, dtype, fmt, timer) -> dict:
    k = layer["kernel"]

    def forward(batch):
        return forward_seconds(layer, batch, device, dtype, fmt, timer)

    def train(batch, groups=1):
        return train_seconds(layer, batch, device, dtype, fmt, timer, groups)

    def gemm(batch):
        m = batch * layer["out_size"] ** 2
        a = torch.randn(m, layer["cin"] * k * k, device=device).to(dtype)
        b = torch.randn(layer["cin"] * k * k, layer["cout"], device=device).to(dtype)
        return timer.seconds(lambda: a @ b)

    eval_flops = conv_flops(layer, args.eval_batch)
    # backward: weight gradient, and the input gradient except for the first layer (1 channel,
    # the images need none)
    train_flops = conv_flops(layer, args.batch) * (3 if layer["cin"] > 1 else 2)
    fwd_s, train_s = forward(args.eval_batch), train(args.batch)
    gemm_eval_s, gemm_train_s = gemm(args.eval_batch), gemm(args.batch)
    grouped_s = train(args.batch, groups=args.groups)
    stacked_s = train(args.batch * args.groups)
    tf = 1e-12
    return layer | {
        "eval_forward_ms": fwd_s * 1e3,
        "eval_forward_tflops": eval_flops / fwd_s * tf,
        "eval_gemm_tflops": eval_flops / gemm_eval_s * tf,
        "train_step_ms": train_s * 1e3,
        "train_step_tflops": train_flops / train_s * tf,
        "train_gemm_tflops": conv_flops(layer, args.batch) / gemm_train_s * tf,
        "grouped_train_ms": grouped_s * 1e3,
        "stacked_train_ms": stacked_s * 1e3,
        "grouped_vs_separate": args.groups * train_s / grouped_s,
        "stacked_vs_separate": args.groups * train_s / stacked_s,
    }


def probe_model(args, device, dtype, fmt, timer) -> dict:
    """The whole AlexNet (as the workflow builds it), eager: eval forward and a training batch's
    forward + backward (no optimiser step), under autocast where the dtype is bf16."""
    model = AlexNet(width=args.width).to(device, memory_format=fmt)
    bf16 = dtype == torch.bfloat16
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    x_eval = torch.rand(args.eval_batch, 1, 28, 28, device=device).contiguous(memory_format=fmt)
    x = x_eval[: args.batch]
    y = torch.randint(0, 10, (args.batch,), device=device)

    def forward():
        with torch.inference_mode(), autocast:
            model.eval()(x_eval)

    def train():
        with autocast:
            loss = F.cross_entropy(model.train()(x).float(), y)
        loss.backward()
        model.zero_grad(set_to_none=True)

    return {
        "eval_forward_ms": timer.seconds(forward) * 1e3,
        "train_step_ms": timer.seconds(train) * 1e3,
    }


def attempt(fn) -> dict:
    """``fn()``'s timings, or the error of a form this device cannot run."""
    try:
        return fn()
    except (RuntimeError, NotImplementedError) as err:
        return {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}


def probe_candidates(args, device, dtype, timer, layers) -> dict:
    """Candidate speed-ups, timed here for a later change of the workflow (which uses none yet).

    - ``first_layer``: the first convolution (one input channel, ~1 TFLOP/s in cuDNN's
      channels_last bf16 training step) in other forms that give the same output: contiguous
      layout, fp32, and the images padded with zero channels to 4 or 8 (tensor-core kernels want
      channel counts that are multiples of 8), and as the Triton kernels of
      ``training.first_conv: triton`` (hw5repro.first_conv; CUDA), each as eval forward and
      training step.
    - ``conv_bias_relu_eval``: every convolution's eval forward with its bias and ReLU as one
      cuDNN call (``torch.cudnn_convolution_relu``) against convolution, then ReLU, as the
      network runs them (the passes between convolutions are half the evaluation time).
    A form the device cannot run records its error.
    """
    first, cl = layers[0], torch.channels_last

    def first_layer(channels, fmt, dt, conv=F.conv2d):
        layer = first | {"cin": channels}  # padded: zero channels beside the images
        eval_batch, batch = args.eval_batch, args.batch

        def run():
            return {
                "eval_forward_ms": forward_seconds(layer, eval_batch, device, dt, fmt, timer, conv)
                * 1e3,
                "train_step_ms": train_seconds(
                    layer, batch, device, dt, fmt, timer, input_grad=False, conv=conv
                )
                * 1e3,
            }

        return attempt(run)

    def triton_conv(x, w, padding, groups=1):
        assert padding == 0 and groups == 1
        return triton_conv2d(x, w)

    forms = {
        "channels_last": (1, cl, dtype),
        "contiguous": (1, torch.contiguous_format, dtype),
        "channels_last_fp32": (1, cl, torch.float32),
        "contiguous_fp32": (1, torch.contiguous_format, torch.float32),
        "channels_last_padded_to_4": (4, cl, dtype),
        "channels_last_padded_to_8": (8, cl, dtype),
    }
    result = {"first_layer": {name: first_layer(*form) for name, form in forms.items()}}
    triton_ok = triton_available() and kernels_run_on(device)
    result["first_layer"]["triton"] = (
        first_layer(1, cl, dtype, triton_conv)
        if triton_ok
        else {"error": "the kernels need CUDA and Triton (or Triton's interpreter)"}
    )

    def conv_relu(layer):
        pad = layer["padding"]
        x = torch.randn(args.eval_batch, layer["cin"], layer["size"], layer["size"], device=device)
        x = x.to(dtype).contiguous(memory_format=cl)
        w = torch.randn(layer["cout"], layer["cin"], layer["kernel"], layer["kernel"])
        w = (w * 0.01).to(device, dtype).contiguous(memory_format=cl)
        b = torch.zeros(layer["cout"], device=device, dtype=dtype)
        with torch.no_grad():
            row = {"eager_ms": timer.seconds(lambda: F.relu_(F.conv2d(x, w, b, padding=pad))) * 1e3}
            fused = attempt(
                lambda: {
                    "fused_ms": timer.seconds(
                        lambda: torch.cudnn_convolution_relu(x, w, b, (1, 1), (pad, pad), (1, 1), 1)
                    )
                    * 1e3
                }
            )
        return row | ({"fused_error": fused["error"]} if "error" in fused else fused)

    result["conv_bias_relu_eval"] = [conv_relu(layer) for layer in layers]
    return result


def probe_epilogues(args, device, dtype, timer, layers) -> list[dict]:
    """The passes between the convolutions (half of the evaluation's time on the H100), per
    convolution's output (channels_last), each against a candidate that computes the same:

    - the bias: PyTorch adds a cuDNN convolution's bias in a broadcast elementwise kernel
      (``out.add_(b)``, non-vectorised); the same sum as a matrix product of rank one
      (``addmm(out2d, ones, b)``: one rounding of out + b either way, so the same values), at the
      evaluation batch and the training batch; and its gradient, a reduction kernel
      (``g.sum((0, 2, 3))``) against the product's backward (``ones^T @ g2d``);
    - the ReLU (in place);
    - the 3x3/2 max-pool after the third and sixth convolution, forward at the evaluation batch
      and forward + backward at the training batch, channels_last against contiguous, and the
      bias added after the pool instead of before (max and a per-channel add commute: the same
      values, a fourth of the additions), and the pool's values as ``amax`` over an unfolded
      view (no indices written);
    - after the pooled convolutions, the whole evaluation epilogue (bias, pool, ReLU) eager
      against one kernel generated by TorchInductor (:func:`fused_epilogue`).
    ``same_values``: the candidate's output equals the reference's exactly."""
    return [epilogue_row(layer, args, device, dtype, timer) for layer in layers]


def epilogue_row(layer, args, device, dtype, timer) -> dict:
    """:func:`probe_epilogues` for one convolution's output."""
    c, size = layer["cout"], layer["out_size"]

    def activation(batch, fmt=torch.channels_last, grad=False):
        x = torch.randn(batch, c, size, size, device=device).to(dtype)
        return x.contiguous(memory_format=fmt).requires_grad_(grad)

    bias = torch.randn(c, device=device).to(dtype).view(1, c, 1, 1)
    row = {"cout": c, "size": size}
    for name, batch in (("eval", args.eval_batch), ("train", args.batch)):
        row |= bias_and_relu(activation(batch), bias, timer, name)
    row |= bias_gradient(activation(args.batch), timer)
    if layer["pooled"]:
        for name, fmt in (("nhwc", torch.channels_last), ("nchw", torch.contiguous_format)):
            row[f"pool_{name}_eval_ms"] = (
                pool_seconds(activation(args.eval_batch, fmt), timer) * 1e3
            )
            row[f"pool_{name}_train_ms"] = (
                pool_seconds(activation(args.batch, fmt, grad=True), timer) * 1e3
            )
        x = activation(args.eval_batch)
        with torch.no_grad():
            row["pool_then_bias_same_values"] = torch.equal(
                F.max_pool2d(x + bias, 3, 2), F.max_pool2d(x, 3, 2) + bias
            )
            row["bias_then_pool_eval_ms"] = (
                timer.seconds(lambda: F.max_pool2d(x + bias, 3, 2)) * 1e3
            )
            row["pool_then_bias_eval_ms"] = (
                timer.seconds(lambda: F.max_pool2d(x, 3, 2) + bias) * 1e3
            )
            # CUDA's max-pool writes int64 indices even without autograd; the windows' maximum
            # as a reduction over an unfolded view writes the values only
            row["pool_amax_same_values"] = torch.equal(window_amax(x), F.max_pool2d(x, 3, 2))
            row["pool_amax_eval_ms"] = timer.seconds(lambda: window_amax(x)) * 1e3
            row |= fused_epilogue(x, bias, timer, args.epilogue_backend)
    return row


def window_amax(x: torch.Tensor) -> torch.Tensor:
    """The 3x3/2 max-pool's values as ``amax`` over the windows of an unfolded view."""
    return x.unfold(2, 3, 2).unfold(3, 3, 2).amax((-2, -1))


def pooled_epilogue(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """What the network runs after a pooled convolution in evaluation: bias, max-pool, ReLU."""
    return F.relu(F.max_pool2d(x + bias, 3, 2))


@torch.no_grad()
def fused_epilogue(x, bias, timer, backend: str = "inductor") -> dict:
    """:func:`pooled_epilogue` eager (three passes, the pool writing int64 indices) against the
    same function compiled by ``torch.compile`` with ``backend``: TorchInductor (the default)
    generates one kernel for it (one read of the convolution's output, no indices), which says
    whether a fused epilogue is worth writing. Compile seconds included."""
    eager = pooled_epilogue(x, bias)
    row = {
        "epilogue_eager_eval_ms": timer.seconds(lambda: pooled_epilogue(x, bias)) * 1e3,
        "epilogue_backend": backend,
    }

    def compiled():
        started = time.perf_counter()
        fused = torch.compile(pooled_epilogue, backend=backend, dynamic=False)
        same = torch.equal(fused(x, bias), eager)
        return {
            "epilogue_compile_s": time.perf_counter() - started,
            "epilogue_compiled_same_values": same,
            "epilogue_compiled_eval_ms": timer.seconds(lambda: fused(x, bias)) * 1e3,
        }

    result = attempt(compiled)
    return row | ({"epilogue_compiled_error": result["error"]} if "error" in result else result)


@torch.no_grad()
def bias_and_relu(out, bias, timer, name: str) -> dict:
    """The bias added as PyTorch adds it and as a rank-one matrix product (channels_last
    ``out``; the model's :func:`~hw5repro.model.add_bias`), whether both give the same values, and
    an in-place ReLU (with the copy it needs)."""

    def by_product():
        return add_bias(out, bias.view(-1))

    return {
        f"bias_add_{name}_ms": timer.seconds(lambda: out + bias) * 1e3,
        f"bias_addmm_{name}_ms": timer.seconds(by_product) * 1e3,
        f"bias_addmm_{name}_same_values": torch.equal(out + bias, by_product()),
        f"relu_{name}_ms": timer.seconds(lambda: out.clone().relu_()) * 1e3,
        f"clone_{name}_ms": timer.seconds(out.clone) * 1e3,
    }


@torch.no_grad()
def bias_gradient(grad, timer) -> dict:
    """A convolution's bias gradient as PyTorch computes it (a reduction) and as the backward
    of the rank-one product (``ones^T @ grad2d``), with their largest relative difference."""
    flat = grad.permute(0, 2, 3, 1).reshape(-1, grad.shape[1])
    ones = flat.new_ones(1, flat.shape[0])
    by_sum, by_mm = grad.sum((0, 2, 3)).float(), (ones @ flat).float().squeeze(0)
    return {
        "bias_grad_sum_train_ms": timer.seconds(lambda: grad.sum((0, 2, 3))) * 1e3,
        "bias_grad_mm_train_ms": timer.seconds(lambda: ones @ flat) * 1e3,
        "bias_grad_max_rel_diff": ((by_sum - by_mm).abs().max() / by_sum.abs().max()).item(),
    }


def pool_seconds(x, timer) -> float:
    """The 3x3/2 max-pool: forward, or forward + backward where ``x`` needs a gradient."""
    if not x.requires_grad:
        with torch.no_grad():
            return timer.seconds(lambda: F.max_pool2d(x, 3, 2))
    gy = torch.randn_like(F.max_pool2d(x.detach(), 3, 2))

    def step():
        F.max_pool2d(x, 3, 2).backward(gy)
        x.grad = None

    return timer.seconds(step)


#: Run-epochs of the presets: config/config.yaml (6 ratios x 150 epochs) and config/zhang.yaml
#: (27 runs x 150 epochs).
PRESET_RUN_EPOCHS = {"config/config.yaml": 6 * 150, "config/zhang.yaml": 27 * 150}


def bounds(record: dict, train_images: int = 6000, eval_images: int = 16000) -> dict:
    """Seconds of convolution work per run and epoch, and per preset, from a probe record."""
    layers, batch, eval_batch = record["layers"], record["batch"], record["eval_batch"]

    def train_flops(layer):
        return conv_flops(layer, batch) * (3 if layer["cin"] > 1 else 2)

    # the eval-batch rates: the faster of the convolution and the matrix product
    eval_best = sum(
        conv_flops(r, eval_batch) / (max(r["eval_forward_tflops"], r["eval_gemm_tflops"]) * 1e12)
        for r in layers
    )
    per_batch = {
        "measured": (
            sum(r["train_step_ms"] for r in layers) / 1e3,
            sum(r["eval_forward_ms"] for r in layers) / 1e3,
        ),
        "gemm": (sum(train_flops(r) / (r["train_gemm_tflops"] * 1e12) for r in layers), eval_best),
        "stacked": (
            sum(r["stacked_train_ms"] for r in layers) / 1e3 / record["groups"],
            eval_best,
        ),
    }
    out = {}
    for name, (train_s, eval_s) in per_batch.items():
        per_epoch = train_images / batch * train_s + eval_images / eval_batch * eval_s
        out[name] = {
            "train_seconds_per_run_epoch": train_images / batch * train_s,
            "eval_seconds_per_run_epoch": eval_images / eval_batch * eval_s,
            "seconds_per_run_epoch": per_epoch,
        } | {preset: per_epoch * n for preset, n in PRESET_RUN_EPOCHS.items()}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=64, help="training batch")
    parser.add_argument("--eval-batch", type=int, default=5000)
    parser.add_argument("--groups", type=int, default=6, help="runs fused")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", help="folder for the record (required unless --bounds)")
    parser.add_argument("--bounds", help="print the time bounds of a probe record and stop")
    parser.add_argument(
        "--epilogue-backend",
        default="inductor",
        help="torch.compile backend of the fused epilogue candidate (the CPU test: eager)",
    )
    args = parser.parse_args(argv)
    if args.bounds:
        result = bounds(json.loads(Path(args.bounds).read_text()))
        print(json.dumps(result, indent=2))
        return result
    if not args.out:
        parser.error("--out is required (or --bounds RECORD)")
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    dtype = torch.bfloat16 if cuda else torch.float32
    timer = Timer(device, args.repeats)
    rows = [
        probe_layer(layer, args, device, dtype, torch.channels_last, timer)
        for layer in conv_layers(args.width)
    ]
    model = probe_model(args, device, dtype, torch.channels_last, timer)
    candidates = probe_candidates(args, device, dtype, timer, conv_layers(args.width))
    candidates["epilogues"] = probe_epilogues(args, device, dtype, timer, conv_layers(args.width))
    total = {
        what: sum(r[f"{what}_ms"] for r in rows)
        for what in ("eval_forward", "train_step", "grouped_train", "stacked_train")
    }
    record = record_header("conv_efficiency", device) | {
        "dtype": str(dtype).removeprefix("torch."),
        "memory_format": "channels_last",
        "width": args.width,
        "batch": args.batch,
        "eval_batch": args.eval_batch,
        "groups": args.groups,
        "layers": rows,
        "total_ms": total,
        "model_ms": model,
        "candidates": candidates,
        "grouped_vs_separate": args.groups * total["train_step"] / total["grouped_train"],
        "stacked_vs_separate": args.groups * total["train_step"] / total["stacked_train"],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"conv_efficiency_{device.type}_w{args.width:g}.json"
    (out / name).write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"{'layer':<22} {'eval TF/s':>9} {'gemm':>6} {'train TF/s':>10} {'gemm':>6} "
        f"{'grouped':>8} {'stacked':>8}"
    )
    for r in rows:
        shape = f"{r['cin']}->{r['cout']} k{r['kernel']} @{r['size']}"
        print(
            f"{shape:<22} {r['eval_forward_tflops']:9.1f} {r['eval_gemm_tflops']:6.1f} "
            f"{r['train_step_tflops']:10.1f} {r['train_gemm_tflops']:6.1f} "
            f"{r['grouped_vs_separate']:7.2f}x {r['stacked_vs_separate']:7.2f}x"
        )
    print(
        f"all convolutions: eval forward {total['eval_forward']:.2f} ms per {args.eval_batch}, "
        f"train step {total['train_step']:.3f} ms per {args.batch}; {args.groups} runs fused: "
        f"grouped {record['grouped_vs_separate']:.2f}x, "
        f"stacked {record['stacked_vs_separate']:.2f}x of separate steps"
    )
    print(
        f"whole network, eager: eval forward {model['eval_forward_ms']:.2f} ms per "
        f"{args.eval_batch}, train forward+backward {model['train_step_ms']:.3f} ms "
        f"per {args.batch}"
    )
    print("first layer, other forms (eval forward ms per batch, train step ms):")
    for name, t in candidates["first_layer"].items():
        what = t.get("error") or f"{t['eval_forward_ms']:.3f}, {t['train_step_ms']:.3f}"
        print(f"  {name:<28} {what}")
    rows = candidates["conv_bias_relu_eval"]
    print(
        "eval conv + bias + ReLU, eager vs one cuDNN call (ms): "
        + "; ".join(f"{r['eager_ms']:.2f} vs {r.get('fused_ms', float('nan')):.2f}" for r in rows)
        + (f" ({rows[0]['fused_error']})" if "fused_error" in rows[0] else "")
    )
    print("between the convolutions, per layer (ms; eval batch / train batch):")
    for r in candidates["epilogues"]:
        pool = (
            f"; pool nhwc {r['pool_nhwc_eval_ms']:.2f}/{r['pool_nhwc_train_ms']:.3f}"
            f" nchw {r['pool_nchw_eval_ms']:.2f}/{r['pool_nchw_train_ms']:.3f}"
            f" amax {r['pool_amax_eval_ms']:.2f}"
            f"; epilogue eager {r['epilogue_eager_eval_ms']:.2f}"
            f" {r['epilogue_backend']} {r.get('epilogue_compiled_eval_ms', float('nan')):.2f}"
            if "pool_nhwc_eval_ms" in r
            else ""
        )
        print(
            f"  {r['cout']:>4} @{r['size']:<3} bias add {r['bias_add_eval_ms']:.2f}"
            f"/{r['bias_add_train_ms']:.3f} addmm {r['bias_addmm_eval_ms']:.2f}"
            f"/{r['bias_addmm_train_ms']:.3f}; bias grad sum {r['bias_grad_sum_train_ms']:.3f}"
            f" mm {r['bias_grad_mm_train_ms']:.3f}{pool}"
        )
    return record


if __name__ == "__main__":
    main()
