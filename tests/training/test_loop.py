"""The training loop of one run (hw5repro.training.loop): what it records, resumable bit for bit,
safe to preempt, clear failures."""

import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from helpers import assert_same_metrics, small_settings, strip_timing, toy_data
from hw5repro.training.device import DeviceError
from hw5repro.training.loop import METRIC_COLUMNS, Preempted, TrainingError, train

TESTS = str(Path(__file__).resolve().parents[1])


def test_train_records_every_metric_and_learns():
    data = toy_data(n=128, mislabelled_fraction=0.0)
    metrics, model, info = train(
        data, small_settings(epochs=10, lr=0.1, dropout=0.0), seed=0, progress=False
    )
    assert [row["epoch"] for row in metrics] == list(range(1, 11))
    assert list(metrics[0]) == METRIC_COLUMNS
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert metrics[-1]["train_acc"] > metrics[0]["train_acc"]
    assert math.isnan(metrics[0]["train_acc_mislabelled"])  # no wrong labels in this run
    assert metrics[0]["train_acc_clean"] == metrics[0]["train_acc"]
    assert info["device"] == "cpu" and info["precision"] == "fp32"
    assert info["model"] == {"width": 0.125, "dropout": 0.0, "init": "default",
                             "conv_epilogue": "torch"}  # fmt: skip
    assert (info["cuda_graphs"], info["conv_epilogue"], info["resumed_from_epoch"]) == (
        False,
        "torch",
        0,
    )


def test_eval_every_leaves_gaps_but_always_evaluates_the_last_epoch():
    metrics, _, _ = train(
        toy_data(n=64, n_test=32), small_settings(epochs=5, eval_every=2), seed=0, progress=False
    )
    tested = [not math.isnan(row["test_acc"]) for row in metrics]
    assert tested == [False, True, False, True, True]
    assert all(0 <= row["train_acc"] <= 1 for row in metrics)


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path):
    data = toy_data()
    full, full_model, _ = train(data, small_settings(epochs=4), seed=3, progress=False)
    ckpt = tmp_path / "ckpt.pt"
    train(data, small_settings(epochs=2), seed=3, checkpoint=ckpt, progress=False)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    resumed, model, info = train(
        data, small_settings(epochs=4), seed=3, checkpoint=ckpt, progress=False
    )
    assert info["resumed_from_epoch"] == 2
    assert strip_timing(resumed) == strip_timing(full)  # bit for bit
    for a, b in zip(model.state_dict().values(), full_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_of_the_last_epoch_trains_nothing(tmp_path, monkeypatch):
    """The checkpoint after the last epoch is kept; a run trained to its end again reads its
    metrics and model from it, without one epoch of training."""
    from hw5repro.training import loop

    data, ckpt = toy_data(n=64, n_test=32), tmp_path / "ckpt.pt"
    first, model, info = train(
        data, small_settings(epochs=3, checkpoint_every=2), 1, ckpt, progress=False
    )
    assert torch.load(ckpt, weights_only=True)["epoch"] == 3  # after the last epoch too

    def no_epoch(*args):
        raise AssertionError("trained an epoch")

    monkeypatch.setattr(loop, "run_epoch", no_epoch)
    again, model_again, info = train(data, small_settings(epochs=3), 1, ckpt, progress=False)
    assert info["resumed_from_epoch"] == 3
    assert again == first  # timing columns too: the rows come from the checkpoint
    for a, b in zip(model.state_dict().values(), model_again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


CHILD = """
import sys, torch
sys.path.insert(0, {tests!r})
from helpers import small_settings, toy_data
from hw5repro.training.loop import train
torch.set_num_threads(1)
metrics, _, _ = train(toy_data(n=512, seed=1), small_settings(epochs={epochs}), seed=5,
                      checkpoint={ckpt!r}, progress=False)
torch.save(metrics, {out!r})
"""


def test_sigterm_checkpoints_and_restart_gives_the_same_metrics(tmp_path):
    """Kill a training process with SIGTERM mid-run (as SLURM does), restart it, and compare
    with an uninterrupted run (dropout on: its masks come from the global stream, which the
    checkpoint restores)."""
    ckpt, out = str(tmp_path / "ckpt.pt"), str(tmp_path / "metrics.pt")
    script = CHILD.format(tests=TESTS, epochs=6, ckpt=ckpt, out=out)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not os.path.exists(ckpt) and time.time() < deadline:  # first epoch done
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0, "a preempted job must fail so that it is rerun"
    assert "stopped by SIGTERM" in stderr and "Preempted" in stderr
    stopped = torch.load(ckpt, weights_only=True)["epoch"]
    assert 1 <= stopped < 6 and not os.path.exists(out)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    resumed = torch.load(out, weights_only=True)
    # the uninterrupted baseline runs in an identical process (same thread count)
    ckpt2, out2 = str(tmp_path / "none.pt"), str(tmp_path / "full.pt")
    baseline = CHILD.format(tests=TESTS, epochs=6, ckpt=ckpt2, out=out2)
    subprocess.run([sys.executable, "-c", baseline], check=True, timeout=300)
    full = torch.load(out2, weights_only=True)
    assert [row["epoch"] for row in resumed] == list(range(1, 7))
    assert strip_timing(resumed) == strip_timing(full)


def test_sigterm_in_process_raises_preempted_after_writing_the_checkpoint(tmp_path, monkeypatch):
    """The loop's own reaction, without a child process: SIGTERM during the second epoch ends
    the run after it with Preempted, the checkpoint holding that epoch."""
    from hw5repro.training import loop

    real, calls = loop.run_epoch, []

    def epoch_then_sigterm(*args):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args)

    monkeypatch.setattr(loop, "run_epoch", epoch_then_sigterm)
    ckpt = tmp_path / "ckpt.pt"
    settings = small_settings(epochs=5, checkpoint_every=10)
    with pytest.raises(Preempted, match="r: stopped by SIGTERM after epoch 2"):
        train(toy_data(n=64, n_test=16), settings, 0, ckpt, progress=False, desc="r")
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2


def test_nan_loss_stops_with_a_message():
    data = toy_data(n=64, n_test=16)
    data.train_x[0, 0, 0, 0] = float("nan")
    with pytest.raises(TrainingError, match="training loss became nan at epoch 1"):
        train(data, small_settings(epochs=2), seed=0, progress=False)


def test_checkpoints_hold_only_cpu_tensors_and_load_to_the_cpu(tmp_path, monkeypatch):
    """Device independence: every tensor is saved on the CPU and loaded with map_location='cpu',
    so a checkpoint written on cuda:N resumes anywhere (the RNG setters need CPU byte tensors)."""
    ckpt = tmp_path / "ckpt.pt"
    data = toy_data(n=64, n_test=16)
    train(data, small_settings(epochs=1), seed=0, checkpoint=ckpt, progress=False)
    state = torch.load(ckpt, weights_only=True)

    def tensors(obj):
        if torch.is_tensor(obj):
            yield obj
        elif isinstance(obj, dict):
            for value in obj.values():
                yield from tensors(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                yield from tensors(value)

    found = list(tensors(state))
    assert len(found) > 10 and {t.device.type for t in found} == {"cpu"}
    assert state["rng"]["cpu"].dtype == torch.uint8
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("map_location"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    _, _, info = train(data, small_settings(epochs=2), seed=0, checkpoint=ckpt, progress=False)
    assert seen == ["cpu"] and info["resumed_from_epoch"] == 1


def test_checkpoint_of_other_settings_is_set_aside_and_training_restarts(tmp_path, caplog):
    data, ckpt = toy_data(n=128, n_test=32), tmp_path / "ckpt.pt"

    def resume(settings, fingerprint):
        return train(
            data, settings, seed=3, checkpoint=ckpt, progress=False, fingerprint=fingerprint
        )

    resume(small_settings(epochs=3, lr=0.2), "lr=0.2")
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 3 and state["final"]
    torch.save({**state, "final": False}, ckpt)  # as a stopped run's (a finished one's: removed)
    fresh, _, _ = train(data, small_settings(epochs=2), seed=3, progress=False)
    with caplog.at_level("WARNING"):
        metrics, _, info = resume(small_settings(epochs=2), "lr=0.05")
    assert info["resumed_from_epoch"] == 0
    assert "set aside" in caplog.text and "starts from epoch 0" in caplog.text
    assert [r["epoch"] for r in metrics] == [1, 2]  # no rows of the old run survive
    assert strip_timing(metrics) == strip_timing(fresh)
    stale = list(tmp_path.glob("ckpt.pt.stale-*"))
    assert len(stale) == 1 and torch.load(stale[0], weights_only=True)["epoch"] == 3
    # the same fingerprint resumes
    _, _, info = resume(small_settings(epochs=3), "lr=0.05")
    assert info["resumed_from_epoch"] == 2


def test_an_unreadable_checkpoint_is_set_aside_and_training_restarts(tmp_path, caplog):
    """A checkpoint cut short (an empty file, half a file) does not fail every retry: it is
    renamed, kept byte for byte, and the run trains from epoch 0."""
    data, ckpt = toy_data(n=128, n_test=32), tmp_path / "ckpt.pt"
    train(data, small_settings(epochs=2), seed=3, checkpoint=ckpt, progress=False)
    whole = ckpt.read_bytes()
    fresh, _, _ = train(data, small_settings(epochs=2), seed=3, progress=False)
    for broken in (b"", whole[: len(whole) // 2]):
        ckpt.write_bytes(broken)
        with caplog.at_level("WARNING"):
            metrics, _, info = train(
                data, small_settings(epochs=2), seed=3, checkpoint=ckpt, progress=False
            )
        assert info["resumed_from_epoch"] == 0 and strip_timing(metrics) == strip_timing(fresh)
        assert "cannot be read" in caplog.text and "starts from epoch 0" in caplog.text
        caplog.clear()
    aside = sorted(tmp_path.glob("ckpt.pt.unreadable-*"))
    assert sorted(p.read_bytes() for p in aside) == sorted([b"", whole[: len(whole) // 2]])


def test_checkpoints_are_written_off_the_loop_and_hold_their_epochs_state(tmp_path, monkeypatch):
    """The loop hands each checkpoint to a background writer and trains on: a write that takes
    long (here 0.3 s, several epochs of this toy run) still holds the weights, momentum and RNG
    states of its own epoch, bit for bit those of a run stopped there, because the loop copies
    the state before it goes on changing it in place (on the CPU too, where no device copy does
    it)."""
    import threading

    from hw5repro.training import checkpoint

    data, ckpt, writes = toy_data(n=128, n_test=32), tmp_path / "ckpt.pt", []
    real_save = checkpoint.save_atomic

    def slow_save(obj, path):
        time.sleep(0.3)  # meanwhile the loop trains the next epoch
        writes.append((threading.current_thread().name, obj["epoch"]))
        torch.save(obj, tmp_path / f"epoch{obj['epoch']}.pt")
        real_save(obj, path)

    settings = small_settings(epochs=3, momentum=0.9)
    monkeypatch.setattr(checkpoint, "save_atomic", slow_save)
    _, _, info = train(data, settings, seed=3, checkpoint=ckpt, progress=False)
    assert [epoch for _, epoch in writes] == [1, 2, 3]
    assert all(name.startswith("checkpoint") for name, _ in writes)  # not the loop's thread
    assert info["checkpoint_write_seconds"] >= 0.9 and info["checkpoint_pause_seconds"] >= 0
    monkeypatch.setattr(checkpoint, "save_atomic", real_save)
    for epoch in (1, 2):
        written = torch.load(tmp_path / f"epoch{epoch}.pt", weights_only=True)
        stopped = tmp_path / f"stopped{epoch}.pt"
        _, model, _ = train(
            data, replace(settings, epochs=epoch), seed=3, checkpoint=stopped, progress=False
        )
        reference = torch.load(stopped, weights_only=True)
        for key, value in model.state_dict().items():
            assert torch.equal(written["model"][key], value), key
        momentum = lambda s: [v["momentum_buffer"] for v in s["optimizer"]["state"].values()]  # noqa: E731
        assert len(momentum(written)) > 0
        assert all(map(torch.equal, momentum(written), momentum(reference)))
        assert torch.equal(written["rng"]["cpu"], reference["rng"]["cpu"])
        assert torch.equal(written["rng"]["perm"], reference["rng"]["perm"])
        assert len(written["metrics"]) == epoch
    # every checkpoint_every epochs, and after the last epoch
    last = tmp_path / "last.pt"
    train(data, small_settings(epochs=3, checkpoint_every=2), 3, last, progress=False)
    assert torch.load(last, weights_only=True)["epoch"] == 3


def test_a_checkpoint_that_cannot_be_written_stops_the_job_and_keeps_the_one_before(
    tmp_path, monkeypatch
):
    """A write that fails in the background (a full disk) is not lost: the job stops with an
    error naming the run, epoch, file and cause, and the checkpoint before it still resumes."""
    import errno

    from hw5repro.training import checkpoint
    from hw5repro.training.checkpoint import CheckpointError

    data, ckpt = toy_data(n=64, n_test=16), tmp_path / "ckpt.pt"
    train(data, small_settings(epochs=1), seed=3, checkpoint=ckpt, progress=False, desc="r")

    def full_disk(obj, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint, "save_atomic", full_disk)
    with pytest.raises(
        CheckpointError,
        match=r"r: could not write the checkpoint of epoch 2 to .*ckpt\.pt .*No space left",
    ):
        train(data, small_settings(epochs=3), seed=3, checkpoint=ckpt, progress=False, desc="r")
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1


def test_cuda_graphs_setting_on_the_cpu():
    settings = small_settings(epochs=1, cuda_graphs="auto")
    assert settings.cuda_graphs is False
    _, _, info = train(toy_data(n=64, n_test=16), settings, seed=0, progress=False)
    assert info["cuda_graphs"] is False
    with pytest.raises(DeviceError, match="training.cuda_graphs is true but training runs on cpu"):
        small_settings(epochs=1, cuda_graphs=True)


def test_deterministic_algorithms_on_the_cpu(monkeypatch):
    """training.deterministic switches PyTorch's deterministic algorithms on for the process,
    and the next run's default switches them off again; cuDNN's autotuning and cuBLAS's
    workspace are CUDA's business (tests/cuda reruns a run bit for bit there). On a CPU the
    switch changes no value: every metric and weight comes out the same."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    data = toy_data(n=96, n_test=32)
    try:
        on = train(data, small_settings(epochs=2, deterministic=True), seed=4, progress=False)
        assert torch.are_deterministic_algorithms_enabled() and on[2]["deterministic"] is True
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ  # (set only for CUDA)
        off = train(data, small_settings(epochs=2), seed=4, progress=False)
        assert not torch.are_deterministic_algorithms_enabled()
        assert off[2]["deterministic"] is False
    finally:
        torch.use_deterministic_algorithms(False)
    assert_same_metrics(on[0], off[0], rel=0, abs=0)
    for a, b in zip(on[1].state_dict().values(), off[1].state_dict().values(), strict=True):
        assert torch.equal(a, b)
