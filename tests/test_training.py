"""The fast training loop: same computation as the seed's loop, resumable, clear failures."""

import contextlib
import copy
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from hw5repro.device import DeviceError, resolve_device, resolve_precision
from hw5repro.reference_training import seed_style_epoch
from hw5repro.training import (
    METRIC_COLUMNS,
    RunData,
    Settings,
    TrainingError,
    build_model,
    train,
    train_epoch,
)

TIMING = {"epoch_seconds", "eval_seconds"}


def toy_data(n=256, n_test=128, seed=0, replaced_fraction=0.5):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    replaced = torch.zeros(n, dtype=torch.bool)
    replaced[: int(n * replaced_fraction)] = True
    tx = torch.rand(n_test, 1, 28, 28, generator=g)
    ty = torch.randint(0, 10, (n_test,), generator=g)
    return RunData(x, y, replaced, tx, ty)


def small_settings(**kw):
    base = dict(
        epochs=4,
        batch_size=32,
        lr=0.05,
        width=0.125,
        dropout=0.5,
        device="cpu",
        precision="fp32",
        channels_last=False,
        eval_batch_size=128,
        checkpoint_every=1,
    )
    return Settings(**{**base, **kw})


def test_fast_loop_equals_seed_style_loop_in_float32():
    data, settings = toy_data(), small_settings()
    model_a = build_model(settings, seed=0)
    model_b = copy.deepcopy(model_a)
    opt_a = torch.optim.SGD(model_a.parameters(), lr=settings.lr)
    opt_b = torch.optim.SGD(model_b.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(123)
    order = torch.randperm(data.train_x.shape[0], generator=torch.Generator().manual_seed(123))
    torch.manual_seed(7)  # dropout masks: same global RNG stream for both loops
    fast = train_epoch(
        model_a,
        opt_a,
        data.train_x,
        data.train_y,
        settings.batch_size,
        generator,
        contextlib.nullcontext,
    )
    torch.manual_seed(7)
    seed_style = seed_style_epoch(
        model_b,
        opt_b,
        data.train_x,
        data.train_y,
        settings.batch_size,
        torch.device("cpu"),
        order=order,
    )
    assert len(seed_style) == 8
    assert torch.allclose(fast, torch.tensor(seed_style), rtol=1e-5, atol=1e-6)
    for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.allclose(pa, pb, rtol=1e-5, atol=1e-6)


def test_train_records_every_metric_and_learns():
    data = toy_data(n=128, replaced_fraction=0.0)
    metrics, model, info = train(
        data, small_settings(epochs=10, lr=0.1, dropout=0.0), seed=0, progress=False
    )
    assert [row["epoch"] for row in metrics] == list(range(1, 11))
    assert set(metrics[0]) == set(METRIC_COLUMNS)
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert math.isnan(metrics[0]["train_acc_replaced"])  # no replaced labels in this run
    assert info["device"] == "cpu" and info["precision"] == "fp32"


def test_eval_every_leaves_gaps_but_always_evaluates_the_last_epoch():
    metrics, _, _ = train(
        toy_data(), small_settings(epochs=5, eval_every=2), seed=0, progress=False
    )
    tested = [not math.isnan(row["test_acc"]) for row in metrics]
    assert tested == [False, True, False, True, True]


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path):
    data = toy_data()
    full, _, _ = train(data, small_settings(epochs=4), seed=3, progress=False)
    ckpt = tmp_path / "ckpt.pt"
    train(data, small_settings(epochs=2), seed=3, checkpoint=ckpt, progress=False)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    resumed, _, info = train(
        data, small_settings(epochs=4), seed=3, checkpoint=ckpt, progress=False
    )
    assert info["resumed_from_epoch"] == 2
    strip = [{k: v for k, v in row.items() if k not in TIMING} for row in resumed]
    assert strip == [{k: v for k, v in row.items() if k not in TIMING} for row in full]


CHILD = """
import sys, torch
from hw5repro.training import train, Settings
sys.path.insert(0, {tests!r})
from test_training import toy_data, small_settings
torch.set_num_threads(1)
metrics, _, _ = train(toy_data(n=512), small_settings(epochs={epochs}), seed=5,
                      checkpoint={ckpt!r}, progress=False)
torch.save(metrics, {out!r})
"""


def test_sigterm_checkpoints_and_restart_gives_the_same_metrics(tmp_path):
    """Kill a training process with SIGTERM mid-run (as SLURM does), restart it, and compare
    with an uninterrupted run."""
    tests = os.path.dirname(__file__)
    ckpt, out = str(tmp_path / "ckpt.pt"), str(tmp_path / "metrics.pt")
    script = CHILD.format(tests=tests, epochs=8, ckpt=ckpt, out=out)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not os.path.exists(ckpt) and time.time() < deadline:  # first epoch done
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0, "a preempted job must fail so that it is rerun"
    assert "stopped by SIGTERM" in stderr
    stopped_at = torch.load(ckpt, weights_only=True)["epoch"]
    assert 1 <= stopped_at < 8 and not os.path.exists(out)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    resumed = torch.load(out, weights_only=True)
    # the uninterrupted baseline runs in an identical process (same thread count)
    ckpt2, out2 = str(tmp_path / "none.pt"), str(tmp_path / "full.pt")
    baseline = CHILD.format(tests=tests, epochs=8, ckpt=ckpt2, out=out2)
    subprocess.run([sys.executable, "-c", baseline], check=True, timeout=300)
    full = torch.load(out2, weights_only=True)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert strip(resumed) == strip(full)


def test_nan_loss_stops_with_a_message():
    data = toy_data()
    data.train_x[0, 0, 0, 0] = float("nan")
    with pytest.raises(TrainingError, match="training loss became nan at epoch 1"):
        train(data, small_settings(epochs=2), seed=0, progress=False)


def test_cuda_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
        return
    with pytest.raises(DeviceError, match="training.device is 'cuda' but no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
