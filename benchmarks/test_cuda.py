"""Checks that need a CUDA GPU; run by benchmarks/gpu_check.sh on a lent GPU (never in CI, which
has none: these live outside tests/ so that CI's no-skip rule does not apply to them)."""

import contextlib

import torch

from hw5repro.device import resolve_device, resolve_precision
from hw5repro.model import AlexNet
from hw5repro.training import RunData, Settings, train, train_epoch

assert torch.cuda.is_available(), "benchmarks/test_cuda.py needs a CUDA GPU"


def _data(n=512):
    g = torch.Generator().manual_seed(0)
    return RunData(
        torch.rand(n, 1, 28, 28, generator=g),
        torch.randint(0, 10, (n,), generator=g),
        torch.zeros(n, dtype=torch.bool),
        torch.rand(256, 1, 28, 28, generator=g),
        torch.randint(0, 10, (256,), generator=g),
    )


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
    settings = Settings(
        epochs=6,
        batch_size=64,
        lr=0.05,
        width=0.5,
        dropout=0.0,
        device="cuda",
        precision="bf16",
        checkpoint_every=3,
    )
    data = _data()
    full, _, info = train(data, settings, seed=0, progress=False)
    assert info["precision"] == "bf16" and info["channels_last"] is True
    assert full[-1]["train_loss"] < full[0]["train_loss"]
    ckpt = tmp_path / "c.pt"
    train(
        data,
        Settings(**{**settings.__dict__, "epochs": 3}),
        seed=0,
        checkpoint=ckpt,
        progress=False,
    )
    resumed, _, _ = train(data, settings, seed=0, checkpoint=ckpt, progress=False)
    assert [r["epoch"] for r in resumed] == list(range(1, 7))
    assert abs(resumed[-1]["train_loss"] - full[-1]["train_loss"]) < 1e-3


def test_train_epoch_has_no_host_sync():
    model = AlexNet(width=0.25).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data = _data(1024)
    x, y = data.train_x.cuda(), data.train_y.cuda()
    gen = torch.Generator(device="cuda").manual_seed(0)
    train_epoch(model, opt, x, y, 64, gen, contextlib.nullcontext)  # warm-up
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_epoch(model, opt, x, y, 64, gen, contextlib.nullcontext)
    finally:
        torch.cuda.set_sync_debug_mode(0)
