"""Checks that need a CUDA GPU: benchmarks/gpu_check.sh runs ``pytest tests/cuda`` on a lent GPU.
Without one every test here skips, also in CI (no GPU there; tests marked ``cuda`` are exempt from
CI's no-skip rule, tests/conftest.py)."""

import contextlib
import time
from dataclasses import replace

import pytest
import torch

from helpers import REPO, settings_config, toy_data
from hw5repro.training.device import resolve_device
from hw5repro.training.loop import train
from hw5repro.training.model import AlexNet
from hw5repro.training.settings import Settings, resolve_precision
from hw5repro.training.sgd import SGD
from hw5repro.training.steps import (
    EagerStep,
    GraphedStep,
    batch_sizes,
    minibatch_loss,
    run_epoch,
    train_epoch,
)

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs tests/cuda on a lent GPU)",
    ),
]


def cuda_settings(**kw) -> Settings:
    """Resolved settings of a small run on CUDA (the schema's defaults otherwise: auto)."""
    return Settings.from_config(settings_config(**{"device": "cuda", **kw}))


def build_model(settings: Settings, seed: int) -> AlexNet:
    torch.manual_seed(seed)
    return AlexNet(**settings.model())


def _data(n=512):
    return toy_data(n, n_test=256, mislabelled_fraction=0.0)


def test_auto_picks_cuda_and_bf16():
    device = resolve_device("auto")
    assert device.type == "cuda"
    assert resolve_precision("auto", device) == "bf16"


def test_fp32_gpu_steps_match_cpu_steps():
    """The same fixed-order minibatch steps in fp32 (TF32 off) on CPU and GPU."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    cpu_model = AlexNet(width=0.25, dropout=0.0)
    gpu_model = AlexNet(width=0.25, dropout=0.0).cuda()
    gpu_model.load_state_dict(cpu_model.state_dict())
    data = _data(128)
    perm = torch.randperm(128, generator=torch.Generator().manual_seed(1))
    losses = []
    for model, device in ((cpu_model, "cpu"), (gpu_model, "cuda")):
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        x, y, order = data.train_x.to(device), data.train_y.to(device), perm.to(device)
        steps = []
        for i in range(0, 128, 32):
            idx = order[i : i + 32]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps.append(loss.detach().cpu())
        losses.append(torch.stack(steps))
    assert torch.allclose(losses[0], losses[1], rtol=1e-4, atol=1e-5)


def test_bf16_training_learns_and_resumes(tmp_path):
    settings = cuda_settings(
        epochs=6,
        batch_size=64,
        lr=0.05,
        width=0.5,
        dropout=0.0,
        precision="bf16",
        channels_last="auto",
        checkpoint_every=3,
    )
    data = _data()
    full, _, info = train(data, settings, seed=0, progress=False)
    assert info["precision"] == "bf16" and info["channels_last"] is True
    assert full[-1]["train_loss"] < full[0]["train_loss"]
    ckpt = tmp_path / "c.pt"
    train(
        data,
        replace(settings, epochs=3),
        seed=0,
        checkpoint=ckpt,
        progress=False,
    )
    resumed, _, _ = train(data, settings, seed=0, checkpoint=ckpt, progress=False)
    assert [r["epoch"] for r in resumed] == list(range(1, 7))
    assert abs(resumed[-1]["train_loss"] - full[-1]["train_loss"]) < 1e-3


def test_train_epoch_has_no_host_sync():
    model = AlexNet(width=0.25).cuda()
    opt = SGD(model.parameters(), lr=0.01)
    data = _data(1024)
    x, y = data.train_x.cuda(), data.train_y.cuda()
    gen = torch.Generator(device="cuda").manual_seed(0)
    train_epoch(model, opt, x, y, 64, gen, contextlib.nullcontext)  # warm-up
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_epoch(model, opt, x, y, 64, gen, contextlib.nullcontext)
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 5e-4)])
def test_sgd_is_torch_optim_sgd_bit_for_bit_on_cuda(momentum, weight_decay):
    """The workflow's SGD (hw5repro.training.sgd) against torch.optim.SGD on CUDA tensors, where
    both take torch's foreach update: the same weights and momentum buffers, bit for bit."""
    _fp32_exact()
    torch.manual_seed(0)
    ours = AlexNet(width=0.25, dropout=0.0).cuda()
    theirs = AlexNet(width=0.25, dropout=0.0).cuda()
    theirs.load_state_dict(ours.state_dict())
    kw = dict(lr=0.05, momentum=momentum, weight_decay=weight_decay)
    optimisers = [SGD(ours.parameters(), **kw), torch.optim.SGD(theirs.parameters(), **kw)]
    data = _data(128)
    x, y = data.train_x.cuda(), data.train_y.cuda()
    for model, opt in zip((ours, theirs), optimisers, strict=True):
        for i in range(0, 128, 32):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32]).backward()
            opt.step()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)
    mine, reference = (opt.state_dict() for opt in optimisers)
    assert mine["param_groups"] == reference["param_groups"]
    for i, entry in reference["state"].items():
        assert torch.equal(mine["state"][i]["momentum_buffer"], entry["momentum_buffer"])


def _fp32_exact():
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.deterministic = True


def _steps(graphed: bool, n=200, batch=64, epochs=2, dropout=0.0, lr=0.05, momentum=0.9):
    """Per-step losses and final weights of ``epochs`` epochs, eager or graphed, fp32."""
    _fp32_exact()
    settings = cuda_settings(epochs=epochs, batch_size=batch, lr=lr, width=0.25, dropout=dropout)
    model = build_model(settings, seed=0).cuda()
    opt = SGD(model.parameters(), lr=lr, momentum=momentum)  # (hw5repro.training.sgd)
    data = _data(n)
    x, y = data.train_x.cuda(), data.train_y.cuda()
    step = EagerStep(model, opt, minibatch_loss(model, x, y, contextlib.nullcontext))
    if graphed:
        step = GraphedStep(step, batch_sizes(n, batch))
    gen = torch.Generator(device="cuda").manual_seed(0)
    losses = torch.cat([run_epoch(step, n, batch, gen) for _ in range(epochs)])
    return losses.cpu(), [p.detach().cpu() for p in model.parameters()]


def test_graphed_step_computes_what_the_eager_step_computes():
    """fp32, dropout 0, momentum: same per-step losses (incl. the last, smaller batch of
    200 = 3 x 64 + 8) and the same weights after two epochs."""
    eager_losses, eager_w = _steps(graphed=False)
    graph_losses, graph_w = _steps(graphed=True)
    assert eager_losses.shape == (8,)
    assert torch.allclose(eager_losses, graph_losses, rtol=1e-5, atol=1e-6), (
        eager_losses,
        graph_losses,
    )
    for a, b in zip(eager_w, graph_w, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_graphed_dropout_draws_fresh_masks_at_every_replay():
    """lr 0: the weights never change, so different losses on the same batch can only come from
    different dropout masks."""
    settings = cuda_settings(epochs=1, batch_size=64, lr=0.0, width=0.25, dropout=0.5)
    model = build_model(settings, seed=0).cuda()
    opt = SGD(model.parameters(), lr=0.0)
    data = _data(64)
    loss = minibatch_loss(model, data.train_x.cuda(), data.train_y.cuda(), contextlib.nullcontext)
    step = GraphedStep(EagerStep(model, opt, loss), [64])
    idx = torch.arange(64, device="cuda")
    losses = torch.stack([step(idx).clone() for _ in range(5)]).cpu()
    assert len(set(losses.tolist())) == 5, losses


def test_graphed_epoch_has_no_host_sync():
    settings = cuda_settings(epochs=1, batch_size=64, lr=0.01, width=0.25)
    model = build_model(settings, seed=0).cuda()
    opt = SGD(model.parameters(), lr=0.01)
    data = _data(1000)
    x, y = data.train_x.cuda(), data.train_y.cuda()
    loss = minibatch_loss(model, x, y, contextlib.nullcontext)
    step = GraphedStep(EagerStep(model, opt, loss), batch_sizes(1000, 64))
    _second_epoch_has_no_host_sync(step, torch.Generator(device="cuda").manual_seed(0))


def _second_epoch_has_no_host_sync(step, generators, n=1000):
    """An epoch of ``step`` (warm-up), then one that fails at any host sync."""
    run_epoch(step, n, 64, generators)
    torch.cuda.set_sync_debug_mode("error")
    try:
        run_epoch(step, n, 64, generators)
    finally:
        torch.cuda.set_sync_debug_mode(0)


def _resume_settings(device, **kw):
    base = dict(
        epochs=4,
        batch_size=64,
        lr=0.05,
        width=0.25,
        dropout=0.5,
        device=device,
        checkpoint_every=2,
        precision="auto",
        channels_last="auto",
    )
    return Settings.from_config(settings_config(**{**base, **kw}))


def test_checkpoint_moves_between_cuda_and_cpu(tmp_path):
    """A checkpoint written on the GPU resumes on the CPU and the other way round (the crash of
    commit 2234255: the CPU RNG state came back as a CUDA tensor)."""
    data = _data()
    gpu_ckpt, cpu_ckpt = tmp_path / "gpu.pt", tmp_path / "cpu.pt"
    train(data, _resume_settings("cuda", epochs=2), seed=0, checkpoint=gpu_ckpt, progress=False)
    on_cpu, _, info = train(
        data, _resume_settings("cpu"), seed=0, checkpoint=gpu_ckpt, progress=False
    )
    assert info["resumed_from_epoch"] == 2 and info["device"] == "cpu"
    assert [r["epoch"] for r in on_cpu] == [1, 2, 3, 4]
    train(data, _resume_settings("cpu", epochs=2), seed=0, checkpoint=cpu_ckpt, progress=False)
    on_gpu, _, info = train(
        data, _resume_settings("cuda:0"), seed=0, checkpoint=cpu_ckpt, progress=False
    )
    assert info["resumed_from_epoch"] == 2 and info["device"] == "cuda:0"
    assert info["cuda_graphs"] is True


def test_graphed_run_resumes_with_the_same_metrics(tmp_path):
    """Graphs on (the default on CUDA), fp32: stop after 2 epochs, resume to 4 == 4 straight."""
    _fp32_exact()
    data, ckpt = _data(), tmp_path / "c.pt"
    settings = _resume_settings("cuda", precision="fp32")
    full, _, info = train(data, settings, seed=1, progress=False)
    assert info["cuda_graphs"] is True
    train(
        data,
        _resume_settings("cuda", precision="fp32", epochs=2),
        seed=1,
        checkpoint=ckpt,
        progress=False,
    )
    resumed, _, _ = train(data, settings, seed=1, checkpoint=ckpt, progress=False)
    for a, b in zip(full, resumed, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4, (full, resumed)
        assert a["test_acc"] == b["test_acc"]


def test_background_checkpoints_hold_their_epochs_state_on_cuda(tmp_path, monkeypatch):
    """Graphed fp32 training goes on while each checkpoint is written (here slowly, 0.3 s, in the
    background thread): every checkpoint holds CPU tensors with its own epoch's weights and
    momentum, those of a run stopped at that epoch, and the CUDA RNG state."""
    import threading

    from hw5repro.training import checkpoint

    _fp32_exact()
    data, real_save, written = _data(), checkpoint.save_atomic, {}

    def slow_save(obj, path):
        time.sleep(0.3)
        assert threading.current_thread() is not threading.main_thread()
        written[obj["epoch"]] = obj
        real_save(obj, path)

    monkeypatch.setattr(checkpoint, "save_atomic", slow_save)
    settings = _resume_settings("cuda", precision="fp32", epochs=3, checkpoint_every=1)
    _, _, info = train(data, settings, seed=2, checkpoint=tmp_path / "c.pt", progress=False)
    assert info["cuda_graphs"] is True and sorted(written) == [1, 2, 3]
    assert info["checkpoint_write_seconds"] >= 0.9
    monkeypatch.setattr(checkpoint, "save_atomic", real_save)
    for epoch in (1, 2):
        snapshot = written[epoch]
        assert snapshot["rng"]["cuda"].device.type == "cpu"
        _, model, _ = train(data, replace(settings, epochs=epoch), seed=2, progress=False)
        for key, value in model.state_dict().items():
            assert snapshot["model"][key].device.type == "cpu"
            assert torch.allclose(snapshot["model"][key], value.cpu(), rtol=1e-5, atol=1e-6), key


def _evaluates_like_the_plain_network(other: AlexNet, n: int) -> None:
    """``other``, a variant of the width-1/4 AlexNet given the plain network's weights, computes
    its evaluation logits bit for bit, in fp32 and in bf16 autocast (channels_last)."""
    _fp32_exact()
    torch.manual_seed(0)
    cl = torch.channels_last
    plain = AlexNet(width=0.25).cuda().to(memory_format=cl).eval()
    other = other.cuda().to(memory_format=cl).eval()
    other.load_state_dict(plain.state_dict())
    x = _data(n).train_x.cuda().contiguous(memory_format=cl)
    with torch.inference_mode():
        assert torch.equal(other(x), plain(x))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            assert torch.equal(other(x), plain(x))


def test_triton_epilogues_compute_what_pytorchs_passes_compute():
    """conv_epilogue: triton on CUDA (hw5repro.kernels.epilogues): the same evaluation logits as
    PyTorch's passes, bit for bit, in bf16 autocast and in fp32 (channels_last, a batch with
    partial blocks); and graphed fp32 training with the same losses and accuracies (the bias
    gradient is the same sum in another order)."""
    _evaluates_like_the_plain_network(AlexNet(width=0.25, conv_epilogue="triton"), n=500)
    settings = _resume_settings("cuda", precision="fp32", dropout=0.0, epochs=3)
    plain, _, info = train(_data(), replace(settings, conv_epilogue="torch"), 3, progress=False)
    assert info["conv_epilogue"] == "torch"
    ours, _, info = train(_data(), replace(settings, conv_epilogue="triton"), 3, progress=False)
    assert info["conv_epilogue"] == "triton" and info["cuda_graphs"] is True
    for a, b in zip(plain, ours, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4, (plain, ours)
        assert abs(a["test_acc"] - b["test_acc"]) <= 1 / 256


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_training_epilogues_are_pytorchs_cuda_passes(dtype):
    """hw5repro.kernels.epilogues against PyTorch's CUDA kernels, bit for bit: relu(max_pool(out) +
    b) and the max's place in each window (ties in bf16: the first largest), the ReLU's gradient
    and the max-pool's input gradient (fp32 sums in the windows' order, rounded once); the bias
    gradient within rounding. Then relu(out + b) and its gradients the same way."""
    from hw5repro.kernels import epilogues as train_epilogues

    _fp32_exact()
    torch.manual_seed(0)
    cl = torch.channels_last
    out = (torch.randn(64, 96, 23, 23, device="cuda") * 3).to(dtype).contiguous(memory_format=cl)
    bias = torch.randn(96, device="cuda")
    grad = torch.randn(64, 96, 11, 11, device="cuda").to(dtype)
    mine = out.detach().clone().requires_grad_()
    theirs = out.detach().clone().requires_grad_()
    b1, b2 = bias.clone().requires_grad_(), bias.clone().requires_grad_()
    y = train_epilogues.pool_bias_relu(mine, b1)
    ref = torch.relu(torch.nn.functional.max_pool2d(theirs, 3, 2) + b2.to(dtype).view(1, -1, 1, 1))
    assert torch.equal(y, ref)
    y.backward(grad)
    ref.backward(grad)
    assert torch.equal(mine.grad, theirs.grad)
    torch.testing.assert_close(b1.grad, b2.grad, rtol=1e-2, atol=1e-2 * b2.grad.abs().max().item())
    mine.grad = theirs.grad = b1.grad = b2.grad = None
    grad = torch.randn(64, 96, 23, 23, device="cuda").to(dtype)
    y = train_epilogues.bias_relu(mine, b1)
    ref = torch.relu(theirs + b2.to(dtype).view(1, -1, 1, 1))
    assert torch.equal(y, ref)
    y.backward(grad)
    ref.backward(grad)
    assert torch.equal(mine.grad, theirs.grad)
    torch.testing.assert_close(b1.grad, b2.grad, rtol=1e-2, atol=1e-2 * b2.grad.abs().max().item())


def test_the_workflows_config_trains_with_the_triton_kernels():
    """config/config.yaml's conv_epilogue (auto) on CUDA with Triton is the Triton kernels
    (hw5repro.training.settings), in a graphed bf16 run."""
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert config["training"]["conv_epilogue"] == "auto"
    settings = Settings.from_config(config)
    assert settings.conv_epilogue == "triton" and settings.precision == "bf16"
    assert settings.device.startswith("cuda") and settings.cuda_graphs is True
    metrics, _, info = train(
        _data(),
        replace(settings, epochs=3, width=0.25, eval_batch_size=256),
        seed=3,
        progress=False,
    )
    assert (info["conv_epilogue"], info["cuda_graphs"]) == ("triton", True)
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert all(0 < m["train_loss"] < 2.5 and 0 <= m["test_acc"] <= 1 for m in metrics), metrics


def test_deterministic_reruns_reproduce_every_metric_bit_for_bit():
    """training.deterministic: true with config/config.yaml's settings otherwise (bf16, CUDA
    graphs, the Triton kernels, dropout 0.5): a second run of the same run gives every metric
    and weight bit for bit (no cuDNN autotuning, no atomic sums;
    hw5repro.training.device.select_algorithms), and no operation lacks a deterministic
    algorithm."""
    import pandas as pd
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    settings = replace(
        Settings.from_config(config), epochs=3, width=0.25, eval_batch_size=256, deterministic=True
    )
    try:
        first, second = (train(_data(), settings, 5, progress=False) for _ in range(2))
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    assert first[2]["deterministic"] is True and first[2]["cuda_graphs"] is True
    assert first[2]["conv_epilogue"] == "triton"
    timing = ["epoch_seconds", "eval_seconds"]
    a, b = (pd.DataFrame(rows).drop(columns=timing) for rows in (first[0], second[0]))
    assert len(a) == 3 and a.equals(b), (a, b)  # (equals: NaN where NaN)
    for x, y in zip(first[1].state_dict().values(), second[1].state_dict().values(), strict=True):
        assert torch.equal(x, y)
