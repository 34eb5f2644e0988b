"""The fast training loop: same computation as the seed's loop, resumable, clear failures."""

import contextlib
import copy
import json
import math
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from conftest import assert_same_metrics
from hw5repro import device
from hw5repro.device import DeviceError, resolve_device, resolve_precision
from hw5repro.reference_training import seed_style_epoch
from hw5repro.runset import build_model, make_optimizer
from hw5repro.steps import CompileError
from hw5repro.training import (
    METRIC_COLUMNS,
    RunData,
    Settings,
    TrainingError,
    train,
    train_epoch,
)

TIMING = {"epoch_seconds", "eval_seconds"}


def toy_data(n=256, n_test=128, seed=0, mislabelled_fraction=0.5):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    mislabelled = torch.zeros(n, dtype=torch.bool)
    mislabelled[: int(n * mislabelled_fraction)] = True
    tx = torch.rand(n_test, 1, 28, 28, generator=g)
    ty = torch.randint(0, 10, (n_test,), generator=g)
    return RunData(x, y, mislabelled, tx, ty)


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
    opt_a = make_optimizer(settings, model_a)  # the workflow's optimiser (hw5repro.sgd)
    opt_b = torch.optim.SGD(model_b.parameters(), lr=settings.lr)  # the seed's
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
    data = toy_data(n=128, mislabelled_fraction=0.0)
    metrics, model, info = train(
        data, small_settings(epochs=10, lr=0.1, dropout=0.0), seed=0, progress=False
    )
    assert [row["epoch"] for row in metrics] == list(range(1, 11))
    assert set(metrics[0]) == set(METRIC_COLUMNS)
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert math.isnan(metrics[0]["train_acc_mislabelled"])  # no wrong labels in this run
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
from hw5repro.training import train_runs
sys.path.insert(0, {tests!r})
from test_training import toy_data, small_settings
torch.set_num_threads(1)
runs = {runs}
metrics, _, _ = train_runs([toy_data(n=512, seed=i) for i in range(runs)],
                           small_settings(epochs={epochs}), seeds=[5 + i for i in range(runs)],
                           checkpoint_paths=[{ckpt!r} + str(i) for i in range(runs)],
                           progress=False)
torch.save(metrics, {out!r})
"""


@pytest.mark.parametrize("runs", [1, 2], ids=["one run", "two runs fused"])
def test_sigterm_checkpoints_and_restart_gives_the_same_metrics(tmp_path, runs):
    """Kill a training process with SIGTERM mid-run (as SLURM does), restart it, and compare
    with an uninterrupted run; for one run and for two runs fused in one network (dropout on:
    their masks come from the shared stream, which the checkpoints restore)."""
    tests = os.path.dirname(__file__)
    ckpt, out = str(tmp_path / "ckpt.pt"), str(tmp_path / "metrics.pt")
    script = CHILD.format(tests=tests, runs=runs, epochs=8, ckpt=ckpt, out=out)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not os.path.exists(ckpt + "0") and time.time() < deadline:  # first epoch done
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0, "a preempted job must fail so that it is rerun"
    assert "stopped by SIGTERM" in stderr
    stopped = [torch.load(ckpt + str(i), weights_only=True)["epoch"] for i in range(runs)]
    assert len(set(stopped)) == 1 and 1 <= stopped[0] < 8 and not os.path.exists(out)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    resumed = torch.load(out, weights_only=True)
    # the uninterrupted baseline runs in an identical process (same thread count)
    ckpt2, out2 = str(tmp_path / "none.pt"), str(tmp_path / "full.pt")
    baseline = CHILD.format(tests=tests, runs=runs, epochs=8, ckpt=ckpt2, out=out2)
    subprocess.run([sys.executable, "-c", baseline], check=True, timeout=300)
    full = torch.load(out2, weights_only=True)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert len(resumed) == runs
    for a, b in zip(resumed, full, strict=True):
        assert strip(a) == strip(b)


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


def test_checkpoints_hold_only_cpu_tensors_and_load_to_the_cpu(tmp_path, monkeypatch):
    """Device independence: every tensor is saved on the CPU and loaded with map_location='cpu',
    so a checkpoint written on cuda:N resumes anywhere (the RNG setters need CPU byte tensors)."""
    ckpt = tmp_path / "ckpt.pt"
    train(toy_data(), small_settings(epochs=1), seed=0, checkpoint=ckpt, progress=False)
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
    _, _, info = train(
        toy_data(), small_settings(epochs=2), seed=0, checkpoint=ckpt, progress=False
    )
    assert seen == ["cpu"] and info["resumed_from_epoch"] == 1


def test_checkpoint_of_other_settings_is_set_aside_and_training_restarts(tmp_path, caplog):
    data, ckpt = toy_data(), tmp_path / "ckpt.pt"

    def resume(settings, fingerprint):
        return train(
            data, settings, seed=3, checkpoint=ckpt, progress=False, fingerprint=fingerprint
        )

    # an unfinished training's checkpoint (a finished one's is removed: test_idempotent_training)
    from hw5repro.training import train_runs

    train_runs([data], small_settings(epochs=3, lr=0.2, checkpoint_every=2), [3], [ckpt],
               ["lr=0.2"], progress=False, final_checkpoint=False)  # fmt: skip
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    fresh, _, _ = train(data, small_settings(epochs=2), seed=3, progress=False)
    with caplog.at_level("WARNING"):
        metrics, _, info = resume(small_settings(epochs=2), "lr=0.05")
    assert info["resumed_from_epoch"] == 0
    assert "set aside" in caplog.text and "starts from epoch 0" in caplog.text
    assert [r["epoch"] for r in metrics] == [1, 2]  # no rows of the old run survive
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert strip(metrics) == strip(fresh)
    stale = list(tmp_path.glob("ckpt.pt.stale-*"))
    assert len(stale) == 1 and torch.load(stale[0], weights_only=True)["epoch"] == 2
    # the same fingerprint resumes
    _, _, info = resume(small_settings(epochs=3), "lr=0.05")
    assert info["resumed_from_epoch"] == 2


def test_an_unreadable_checkpoint_is_set_aside_and_training_restarts(tmp_path, caplog):
    """A checkpoint cut short (an empty file, half a file) does not fail every retry: it is
    renamed, kept byte for byte, and the run trains from epoch 0."""
    data, ckpt = toy_data(), tmp_path / "ckpt.pt"
    train(data, small_settings(epochs=2), seed=3, checkpoint=ckpt, progress=False)
    whole = ckpt.read_bytes()
    fresh, _, _ = train(data, small_settings(epochs=2), seed=3, progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    for broken in (b"", whole[: len(whole) // 2]):
        ckpt.write_bytes(broken)
        with caplog.at_level("WARNING"):
            metrics, _, info = train(
                data, small_settings(epochs=2), seed=3, checkpoint=ckpt, progress=False
            )
        assert info["resumed_from_epoch"] == 0 and strip(metrics) == strip(fresh)
        assert "cannot be read" in caplog.text and "starts from epoch 0" in caplog.text
        caplog.clear()
    aside = sorted(tmp_path.glob("ckpt.pt.unreadable-*"))
    assert sorted(p.read_bytes() for p in aside) == sorted([b"", whole[: len(whole) // 2]])


def test_a_checkpoint_reaches_the_disk_before_it_replaces_the_old_one(tmp_path, monkeypatch):
    from hw5repro import checkpoint

    events = []
    fsync, replace = checkpoint.os.fsync, checkpoint.os.replace
    monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: events.append("fsync") or fsync(fd))
    monkeypatch.setattr(
        checkpoint.os, "replace", lambda a, b: events.append("replace") or replace(a, b)
    )
    checkpoint.save_atomic({"x": torch.ones(3)}, tmp_path / "c.pt")
    assert events == ["fsync", "replace", "fsync"]  # the file, the rename, the folder
    assert torch.equal(torch.load(tmp_path / "c.pt", weights_only=True)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left


@pytest.mark.parametrize("err", ["EINVAL", "EIO"])
def test_a_folder_the_filesystem_cannot_sync_keeps_the_checkpoint(tmp_path, monkeypatch, err):
    """FUSE, 9p and some network filesystems refuse fsync on a folder (EINVAL): the checkpoint,
    synced and renamed, stands; a real I/O error still stops the job."""
    import errno

    from hw5repro import checkpoint

    fsync = checkpoint.os.fsync

    def refuse_folders(fd):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(getattr(errno, err), os.strerror(getattr(errno, err)))
        fsync(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", refuse_folders)
    if err == "EIO":
        with pytest.raises(OSError, match="Input/output error"):
            checkpoint.save_atomic({"x": torch.ones(3)}, tmp_path / "c.pt")
        return
    checkpoint.save_atomic({"x": torch.ones(3)}, tmp_path / "c.pt")
    assert torch.equal(torch.load(tmp_path / "c.pt", weights_only=True)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_checkpoints_are_written_off_the_loop_and_hold_their_epochs_state(tmp_path, monkeypatch):
    """The loop hands each checkpoint to a background writer and trains on: a write that takes
    long (here 0.3 s, several epochs of this toy run) still holds the weights, momentum and RNG
    states of its own epoch, bit for bit those of a run stopped there, because the loop copies
    the state before it goes on changing it in place (on the CPU too, where no device copy does
    it)."""
    import threading

    from hw5repro import checkpoint
    from hw5repro.training import train_runs

    data, ckpt, writes = toy_data(), tmp_path / "ckpt.pt", []
    real_save = checkpoint.save_atomic

    def slow_save(obj, path):
        time.sleep(0.3)  # meanwhile the loop trains the next epoch
        writes.append((threading.current_thread().name, obj["epoch"]))
        torch.save(obj, tmp_path / f"epoch{obj['epoch']}.pt")
        real_save(obj, path)

    monkeypatch.setattr(checkpoint, "save_atomic", slow_save)
    _, _, info = train(data, small_settings(epochs=3), seed=3, checkpoint=ckpt, progress=False)
    assert [epoch for _, epoch in writes] == [1, 2, 3]
    assert all(name.startswith("checkpoint") for name, _ in writes)  # not the loop's thread
    assert info["checkpoint_write_seconds"] >= 0.9 and info["checkpoint_pause_seconds"] >= 0
    monkeypatch.setattr(checkpoint, "save_atomic", real_save)
    for epoch in (1, 2):
        written = torch.load(tmp_path / f"epoch{epoch}.pt", weights_only=True)
        stopped = tmp_path / f"stopped{epoch}.pt"
        _, model, _ = train(
            data, small_settings(epochs=epoch), seed=3, checkpoint=stopped, progress=False
        )
        reference = torch.load(stopped, weights_only=True)
        for key, value in model.state_dict().items():
            assert torch.equal(written["model"][key], value), key
        momentum = lambda s: [v["momentum_buffer"] for v in s["optimizer"]["state"].values()]  # noqa: E731
        assert all(map(torch.equal, momentum(written), momentum(reference)))
        assert torch.equal(written["rng"]["cpu"], reference["rng"]["cpu"])
        assert torch.equal(written["rng"]["perm"], reference["rng"]["perm"])
        assert len(written["metrics"]) == epoch
    # the workflow's job skips the checkpoint after the last epoch: it removes them right after
    last = tmp_path / "last.pt"
    train_runs(
        [data],
        small_settings(epochs=3, checkpoint_every=2),
        [3],
        [last],
        progress=False,
        final_checkpoint=False,
    )
    assert torch.load(last, weights_only=True)["epoch"] == 2


def test_a_checkpoint_that_cannot_be_written_stops_the_job_and_keeps_the_one_before(
    tmp_path, monkeypatch
):
    """A write that fails in the background (a full disk) is not lost: the job stops with an
    error naming the run, epoch, file and cause, and the checkpoint before it still resumes."""
    import errno

    from hw5repro import checkpoint
    from hw5repro.checkpoint import CheckpointError

    data, ckpt = toy_data(), tmp_path / "ckpt.pt"
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
    _, _, info = train(
        toy_data(n=64), small_settings(epochs=1, cuda_graphs="auto"), seed=0, progress=False
    )
    assert info["cuda_graphs"] is False
    with pytest.raises(DeviceError, match="training.cuda_graphs is true but training runs on cpu"):
        train(toy_data(n=64), small_settings(epochs=1, cuda_graphs=True), seed=0, progress=False)


def test_deterministic_algorithms_on_the_cpu(monkeypatch):
    """training.deterministic switches PyTorch's deterministic algorithms on for the process,
    and the next run's default switches them off again; cuDNN's autotuning and cuBLAS's
    workspace are CUDA's business (benchmarks/test_cuda.py reruns a run bit for bit there). On a
    CPU the switch changes no value: every metric and weight comes out the same."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    data = toy_data(n=96)
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


def _compile_with(monkeypatch, backend):
    """training.compile through TorchDynamo with ``backend`` instead of Inductor (whose cold C++
    compilation costs this CPU a minute): the project's part is the same."""
    import torch._dynamo

    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: compile_(model, backend=backend))
    torch._dynamo.reset()


def test_compiled_training_computes_what_eager_training_computes(monkeypatch):
    """training.compile: true trains through torch.compile (the epoch's smaller last batch
    included: 72 = 2 x 32 + 8) and, with dropout 0 in fp32, to the eager run's values."""
    _compile_with(monkeypatch, "aot_eager")
    data = toy_data(n=72, n_test=16)
    eager, _, eager_info = train(data, small_settings(epochs=2, dropout=0.0), 0, progress=False)
    compiled, _, info = train(
        data, small_settings(epochs=2, dropout=0.0, compile=True), 0, progress=False
    )
    assert (info["compiled"], eager_info["compiled"]) == (True, False)
    assert_same_metrics(eager, compiled, rel=1e-4, abs=1e-5)


def test_compiled_runs_side_by_side_share_one_compiled_network(monkeypatch):
    """group_form: streams with training.compile: each run's network is compiled, and all share
    one graph per batch size (two here), not one per run and batch size, which past Dynamo's
    recompile limit would run eager, silently; the values are the eager ones."""
    from torch._dynamo.utils import counters

    from hw5repro.training import train_runs

    _compile_with(monkeypatch, "aot_eager")
    counters.clear()
    datas = [toy_data(n=72, n_test=16, seed=i) for i in range(3)]
    kw = dict(epochs=2, dropout=0.0, runs_per_job=3, group_form="streams")
    compiled, _, info = train_runs(
        datas, small_settings(compile=True, **kw), [0, 1, 2], progress=False
    )
    assert info["compiled"] is True and info["group_form"] == "streams"
    assert counters["stats"]["unique_graphs"] == 2 and not counters["unimplemented"]
    eager, _, _ = train_runs(datas, small_settings(**kw), [0, 1, 2], progress=False)
    for a, b in zip(compiled, eager, strict=True):
        assert_same_metrics(b, a, rel=1e-4, abs=1e-5)


def test_a_compiler_failure_names_the_setting(monkeypatch):
    """torch.compile compiles at the first step, not where it is called: the job stops there
    with an error naming training.compile and the cause (no silent fall back to eager mode,
    whose results differ from the compiled ones that run.json would claim)."""

    def no_compiler(graph, example_inputs):
        raise RuntimeError("no C++ compiler found")

    _compile_with(monkeypatch, no_compiler)
    with pytest.raises(CompileError, match="training.compile is true, but torch.compile") as err:
        train(toy_data(n=64), small_settings(epochs=1, compile=True), 0, progress=False)
    assert "no C++ compiler found" in str(err.value)
    assert "set training.compile: false" in str(err.value)


def _write_idx(path, array):
    """``array`` (uint8) as an IDX file, MNIST's format."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.tobytes())


def _raw_mnist(tmp_path, labels_seed=0):
    """A tiny MNIST in IDX files (120 training and 64 test images): a training job's data."""
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    g = torch.Generator().manual_seed(0)
    images = {
        n: torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g) for n in (120, 64)
    }
    labels = torch.Generator().manual_seed(labels_seed)
    for prefix, n in (("train", 120), ("t10k", 64)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images[n].numpy())
        y = torch.randint(0, 10, (n,), dtype=torch.uint8, generator=labels)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y.numpy())
    return raw


#: What the training jobs below draw: 96 of the 120 training images, the 64 test images.
DATA = {"seed": 0, "train_size": 96, "test_size": None}


def _job_config(**training):
    return {
        "model": {"width": 0.125, "dropout": 0.5, "init": "kaiming"},
        "training": {
            "epochs": 2,
            "batch_size": 32,
            "lr": 0.05,
            "device": "cpu",
            "precision": "fp32",
            "eval_batch_size": 64,
            "checkpoint_every": 1,
            "conv_bias": "auto",  # as config/config.yaml: on the CPU, add and torch
            "first_conv": "auto",
            **training,
        },
    }


def test_train_job_fingerprint_covers_results_settings_and_data(tmp_path):
    """A checkpoint resumes only for the same run, result settings and data."""
    from types import SimpleNamespace

    from hw5repro.training import train_job

    raw = _raw_mnist(tmp_path)
    outputs = SimpleNamespace(
        metrics=tmp_path / "m.csv", model=tmp_path / "model.pt", info=tmp_path / "run.json"
    )

    def job(config, run="labels_r1_s0", data=DATA):
        ckpt = tmp_path / "ckpt.pt"
        train_job([run], raw, data, config, [vars(outputs)], [ckpt])
        return json.loads(outputs.info.read_text())

    first = job(_job_config())
    assert (first["train_images"], first["test_images"]) == (96, 64)
    assert first["data"] == DATA | {"sha256": first["data"]["sha256"]}
    # the network as built (auto resolved for the CPU); the settings as configured
    assert first["model"] == {
        "width": 0.125,
        "dropout": 0.5,
        "init": "kaiming",
        "conv_bias": "add",
        "first_conv": "torch",
    }
    assert (first["settings"]["conv_bias"], first["settings"]["first_conv"]) == ("auto", "auto")
    # the software that computed it: torch here; CUDA, cuDNN and Triton only on CUDA
    assert first["torch"] == torch.__version__
    assert (first["cuda"], first["cudnn"], first["triton"]) == (None, None, None)
    # and with how many threads (on a CPU another count rounds oneDNN's reductions otherwise)
    assert first["cpu_threads"] == torch.get_num_threads()
    threads = torch.get_num_threads()
    try:
        train_job(["labels_r1_s0"], raw, DATA, _job_config(), [vars(outputs)], [tmp_path / "t"], 1)
        assert json.loads(outputs.info.read_text())["cpu_threads"] == 1
    finally:
        torch.set_num_threads(threads)
    same_result = job(_job_config(checkpoint_every=5, eval_batch_size=7))
    assert same_result["fingerprint"] == first["fingerprint"]
    assert job(_job_config(lr=0.01))["fingerprint"] != first["fingerprint"]
    assert job(_job_config(conv_bias="gemm"))["fingerprint"] != first["fingerprint"]
    assert job(_job_config(first_conv="triton"))["fingerprint"] != first["fingerprint"]
    assert job(_job_config(deterministic=True))["fingerprint"] != first["fingerprint"]
    torch.use_deterministic_algorithms(False)
    # the fingerprint names the settings as resolved on this device: auto is fp32 on a CPU ...
    assert job(_job_config(precision="auto"))["fingerprint"] == first["fingerprint"]
    # ... and a checkpoint of a device where auto meant bf16 does not resume here
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(device, "resolve_precision", lambda spec, dev: "bf16")
        assert job(_job_config(precision="auto"))["fingerprint"] != first["fingerprint"]
    assert job(_job_config(), run="labels_r1_s1")["fingerprint"] != first["fingerprint"]
    other_subset = job(_job_config(), data=DATA | {"seed": 1})
    assert other_subset["data"]["sha256"] != first["data"]["sha256"]
    assert other_subset["fingerprint"] != first["fingerprint"]
    _raw_mnist(tmp_path, labels_seed=1)  # same settings, other MNIST files
    other_files = job(_job_config())
    assert other_files["data"]["sha256"] != first["data"]["sha256"]
    assert other_files["fingerprint"] != first["fingerprint"]
    # the saved model rebuilds on its own
    from hw5repro.training import load_model

    model = load_model(outputs.model)
    assert sum(p.numel() for p in model.parameters()) == first["parameters"]
    # the last job's checkpoint after its last epoch is kept (a rerun writes the outputs from it);
    # the finished ones of other settings or data were removed, not set aside
    kept = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert (
        kept["final"] and kept["epoch"] == 2 and kept["fingerprint"] == other_files["fingerprint"]
    )
    assert [p.name for p in tmp_path.glob("ckpt.pt*")] == ["ckpt.pt"]


def test_an_operation_without_a_deterministic_algorithm_names_the_setting(tmp_path, monkeypatch):
    """training.deterministic: true on a device where an operation has no deterministic
    algorithm (PyTorch raises; the CPU kernels this network runs all have one, so the error is
    PyTorch's own text raised here): the job fails naming the setting and the way out; without
    the setting the same error passes unchanged."""
    from types import SimpleNamespace

    from hw5repro import training

    message = (
        "max_pool3d_with_indices_backward_cuda does not have a deterministic implementation, "
        "but you set 'torch.use_deterministic_algorithms(True)'."
    )

    def no_deterministic_algorithm(*args):
        raise RuntimeError(message)

    monkeypatch.setattr(training, "run_epoch", no_deterministic_algorithm)
    raw = _raw_mnist(tmp_path)
    out = SimpleNamespace(
        metrics=tmp_path / "m.csv", model=tmp_path / "model.pt", info=tmp_path / "run.json"
    )
    try:
        with pytest.raises(
            TrainingError,
            match=r"training.deterministic is true, but an operation of this training has no "
            r"deterministic algorithm on this device \(max_pool3d.*\); set "
            r"training.deterministic to false",
        ):
            training.train_job(
                ["labels_r0_s0"],
                raw,
                DATA,
                _job_config(deterministic=True),
                [vars(out)],
                [tmp_path / "c.pt"],
            )
    finally:
        torch.use_deterministic_algorithms(False)
    with pytest.raises(RuntimeError, match=r"^max_pool3d_with_indices_backward_cuda does not"):
        training.train_job(
            ["labels_r0_s0"], raw, DATA, _job_config(), [vars(out)], [tmp_path / "c.pt"]
        )
    assert not out.metrics.exists()


def test_a_fused_job_writes_each_run_and_ties_its_checkpoints_to_the_group(tmp_path):
    """Two runs in one job: each run's own files and facts; a run's fingerprint also names the
    runs it trained with (they share the dropout stream) and their form, so it differs from the
    run alone and from the run side by side."""
    from hw5repro.training import train_job

    raw = _raw_mnist(tmp_path)
    names = ["labels_r1_s0", "labels_r1_s1"]
    outputs = [{key: tmp_path / name / file for key, file in FILES.items()} for name in names]
    checkpoints = [tmp_path / name / "checkpoint.pt" for name in names]
    config = _job_config(runs_per_job=2)
    train_job(names, raw, DATA, config, outputs, checkpoints, job="group0")
    infos = [json.loads(out["info"].read_text()) for out in outputs]
    assert [info["run_id"] for info in infos] == names and infos[0]["seed"] == 0
    assert all(info["job"] == "group0" and info["job_runs"] == names for info in infos)
    assert all(info["runs_fused"] == 2 for info in infos)
    assert infos[0]["fingerprint"] != infos[1]["fingerprint"]
    metrics = [pd.read_csv(out["metrics"]) for out in outputs]
    assert not metrics[0]["train_loss"].equals(metrics[1]["train_loss"])  # own seeds
    assert all(path.exists() for path in checkpoints)  # kept: a rerun writes the outputs again
    alone = {key: tmp_path / "alone" / file for key, file in FILES.items()}
    train_job(names[:1], raw, DATA, config, [alone], [tmp_path / "c"])
    assert json.loads(alone["info"].read_text())["fingerprint"] != infos[0]["fingerprint"]
    # the runs side by side (group_form: streams) are another result: the forms draw the
    # shared dropout stream differently, so neither resumes the other's checkpoints
    assert all(info["group_form"] == "fused" for info in infos)
    config = _job_config(runs_per_job=2, group_form="streams")
    train_job(names, raw, DATA, config, outputs, checkpoints, job="group0")
    side = [json.loads(out["info"].read_text()) for out in outputs]
    assert [info["group_form"] for info in side] == ["streams", "streams"]
    assert side[0]["settings"]["group_form"] == "streams"
    assert side[0]["fingerprint"] != infos[0]["fingerprint"]


FILES = {"metrics": "metrics.csv", "model": "model.pt", "info": "run.json"}


def test_a_training_job_on_the_cpu_warns_at_its_start(monkeypatch, caplog):
    """The job itself warns (device auto resolved to the CPU) before its first epoch; an explicit
    training.device: cpu is silent. The threshold is lowered so that a toy run counts as long."""
    from hw5repro import cpu_warning

    monkeypatch.setattr(cpu_warning, "SLOW_SECONDS", 0.0)
    with caplog.at_level("WARNING"):
        train(toy_data(n=64), small_settings(epochs=1, device="auto"), seed=0, progress=False)
    first = [r.getMessage() for r in caplog.records]
    assert any("training on the CPU" in m and "config/laptop.yaml" in m for m in first), first
    caplog.clear()
    with caplog.at_level("WARNING"):
        train(toy_data(n=64), small_settings(epochs=1, device="cpu"), seed=0, progress=False)
    assert not any("training on the CPU" in r.getMessage() for r in caplog.records)


def test_software_names_triton_under_either_distribution_name(monkeypatch):
    """On CUDA the run records Triton's version, also where it is installed as pytorch-triton
    (PyTorch's nightly builds); on the CPU no CUDA, cuDNN or Triton version."""
    from importlib import metadata

    installed = {"pytorch-triton": "3.6.0+git1234"}

    def version(name):
        if name not in installed:
            raise metadata.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91002)
    assert device.software(torch.device("cuda"))["triton"] == "3.6.0+git1234"
    installed = {"triton": "3.5.0"}
    assert device.software(torch.device("cuda"))["triton"] == "3.5.0"
    installed = {}
    assert device.software(torch.device("cuda"))["triton"] is None
    assert device.software(torch.device("cpu"))["triton"] is None
