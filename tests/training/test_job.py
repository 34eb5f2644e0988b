"""The Snakemake training job of one run (hw5repro.training.job): its records, its fingerprint,
its checkpoint kept, its errors."""

import json
import logging
import time

import pandas as pd
import pytest
import torch

from helpers import job_config, raw_mnist
from hw5repro.training import job as jobs
from hw5repro.training.job import load_model, train_job
from hw5repro.training.loop import TrainingError

#: What the training jobs below draw: 96 of the 120 training images, the 64 test images.
DATA = {"seed": 0, "train_size": 96, "test_size": None}
FILES = {"metrics": "metrics.csv", "model": "model.pt", "info": "run.json"}


def outputs(folder):
    return {key: folder / name for key, name in FILES.items()}


def test_train_job_fingerprint_covers_results_settings_and_data(tmp_path):
    """A checkpoint resumes only for the same run, result settings and data."""
    raw = raw_mnist(tmp_path)
    out = outputs(tmp_path)

    def job(config, run="labels_r1_s0", data=DATA):
        ckpt = tmp_path / f"ckpt{time.monotonic_ns()}.pt"  # each job its own: no resumption
        train_job(run, raw, data, config, out, ckpt)
        return json.loads(out["info"].read_text())

    first = job(job_config())
    assert (first["train_images"], first["test_images"]) == (96, 64)
    assert first["data"] == DATA | {"sha256": first["data"]["sha256"]}
    assert (first["job"], first["run_id"], first["seed"]) == ("labels_r1_s0",) * 2 + (0,)
    assert (first["corruption"], first["ratio"]) == ("labels", 1.0)
    # the network as built (auto resolved for the CPU) and the result settings, resolved
    assert first["model"] == {
        "width": 0.125,
        "dropout": 0.5,
        "init": "kaiming",
        "conv_epilogue": "torch",
    }
    assert first["conv_epilogue"] == "torch" and first["settings"]["conv_epilogue"] == "torch"
    assert first["settings"]["channels_last"] is True and first["settings"]["precision"] == "fp32"
    assert "checkpoint_every" not in first["settings"]  # operational
    assert "eval_batch_size" not in first["settings"]
    metrics = pd.read_csv(out["metrics"])
    assert list(metrics["epoch"]) == [1, 2] and metrics["test_acc"].notna().all()
    # the software that computed it: torch here; CUDA, cuDNN and Triton only on CUDA
    assert first["torch"] == torch.__version__
    assert (first["cuda"], first["cudnn"], first["triton"]) == (None, None, None)
    # and with how many threads (on a CPU another count rounds oneDNN's reductions otherwise)
    assert first["cpu_threads"] == torch.get_num_threads()
    threads = torch.get_num_threads()
    try:
        train_job("labels_r1_s0", raw, DATA, job_config(), out, tmp_path / "t.pt", threads=1)
        assert json.loads(out["info"].read_text())["cpu_threads"] == 1
    finally:
        torch.set_num_threads(threads)
    same_result = job(job_config(checkpoint_every=5, eval_batch_size=7))
    assert same_result["fingerprint"] == first["fingerprint"]
    assert job(job_config(lr=0.01))["fingerprint"] != first["fingerprint"]
    assert job(job_config(conv_epilogue="triton"))["fingerprint"] != first["fingerprint"]
    assert job(job_config(channels_last=False))["fingerprint"] != first["fingerprint"]
    assert job(job_config(deterministic=True))["fingerprint"] != first["fingerprint"]
    torch.use_deterministic_algorithms(False)
    # the fingerprint names the settings as resolved on this device: auto is fp32 on a CPU ...
    assert job(job_config(precision="auto"))["fingerprint"] == first["fingerprint"]
    # ... and a checkpoint of a device where auto meant bf16 does not resume here
    with pytest.MonkeyPatch.context() as patch:
        from hw5repro.training import settings

        patch.setattr(settings, "resolve_precision", lambda spec, dev: "bf16")
        assert job(job_config(precision="auto"))["fingerprint"] != first["fingerprint"]
    assert job(job_config(), run="labels_r1_s1")["fingerprint"] != first["fingerprint"]
    other_subset = job(job_config(), data=DATA | {"seed": 1})
    assert other_subset["data"]["sha256"] != first["data"]["sha256"]
    assert other_subset["fingerprint"] != first["fingerprint"]
    raw_mnist(tmp_path, labels_seed=1)  # same settings, other MNIST files
    other_files = job(job_config())
    assert other_files["data"]["sha256"] != first["data"]["sha256"]
    assert other_files["fingerprint"] != first["fingerprint"]
    # the saved model rebuilds on its own
    model = load_model(out["model"])
    assert sum(p.numel() for p in model.parameters()) == first["parameters"]


def test_a_finished_run_trains_no_epoch_again_and_writes_the_same_outputs(tmp_path, caplog):
    """A training job keeps its final checkpoint: run again for the same run (Snakemake reruns
    it, or it finished while nobody watched), it trains no epoch, says "already trained" and
    writes identical metrics, model and facts from the checkpoint."""
    raw, ckpt = raw_mnist(tmp_path), tmp_path / "run" / "checkpoint.pt"
    config = job_config(epochs=3, checkpoint_every=2)
    first, again = outputs(tmp_path / "first"), outputs(tmp_path / "again")
    with caplog.at_level(logging.INFO, logger="hw5repro"):
        train_job("gaussian_r0_s1", raw, DATA, config, first, ckpt)
    assert "already trained" not in caplog.text
    saved = torch.load(ckpt, weights_only=True)
    assert saved["epoch"] == 3  # kept after the last epoch
    caplog.clear()
    started = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="hw5repro"):
        train_job("gaussian_r0_s1", raw, DATA, config, again, ckpt)
    seconds = time.perf_counter() - started
    assert "gaussian_r0_s1: already trained" in caplog.text
    assert not any(" epoch 1 train_loss" in r.getMessage() for r in caplog.records)
    info, info_again = (json.loads(o["info"].read_text()) for o in (first, again))
    assert info_again["resumed_from_epoch"] == 3 and info["resumed_from_epoch"] == 0
    assert info_again["wall_seconds"] < 1.0 and seconds < info["wall_seconds"] + 5
    assert first["metrics"].read_bytes() == again["metrics"].read_bytes()  # timing columns too
    assert info_again["train_seconds"] == info["train_seconds"]
    for key in ("fingerprint", "settings", "model", "data", "parameters", "run_id"):
        assert info_again[key] == info[key], key
    a, b = load_model(first["model"]), load_model(again["model"])
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    assert torch.load(ckpt, weights_only=True)["epoch"] == 3


def test_an_operation_without_a_deterministic_algorithm_names_the_setting(tmp_path, monkeypatch):
    """training.deterministic: true on a device where an operation has no deterministic
    algorithm (PyTorch raises; the CPU kernels this network runs all have one, so the error is
    PyTorch's own text raised here): the job fails naming the setting and the way out; without
    the setting the same error passes unchanged."""
    from hw5repro.training import loop

    message = (
        "max_pool3d_with_indices_backward_cuda does not have a deterministic implementation, "
        "but you set 'torch.use_deterministic_algorithms(True)'."
    )

    def no_deterministic_algorithm(*args):
        raise RuntimeError(message)

    monkeypatch.setattr(loop, "run_epoch", no_deterministic_algorithm)
    raw = raw_mnist(tmp_path)
    out = outputs(tmp_path)
    try:
        with pytest.raises(
            TrainingError,
            match=r"training.deterministic is true, but an operation of this training has no "
            r"deterministic algorithm on this device \(max_pool3d.*\); set "
            r"training.deterministic to false",
        ):
            train_job(
                "labels_r0_s0", raw, DATA, job_config(deterministic=True), out, tmp_path / "c.pt"
            )
    finally:
        torch.use_deterministic_algorithms(False)
    with pytest.raises(RuntimeError, match=r"^max_pool3d_with_indices_backward_cuda does not"):
        train_job("labels_r0_s0", raw, DATA, job_config(), out, tmp_path / "c.pt")
    assert not out["metrics"].exists()


def test_a_training_job_on_the_cpu_warns_at_its_start(tmp_path, monkeypatch, caplog):
    """The job itself warns (device auto resolved to the CPU) before its first epoch; an explicit
    training.device: cpu is silent. The threshold is lowered so that a toy run counts as long."""
    from hw5repro.training import cpu_warning

    monkeypatch.setattr(cpu_warning, "SLOW_SECONDS", 0.0)
    raw, out = raw_mnist(tmp_path), outputs(tmp_path)
    config = job_config(epochs=1, device="auto")
    with caplog.at_level("INFO", logger="hw5repro"):
        train_job("labels_r0_s0", raw, DATA, config, out, tmp_path / "a.pt")
    messages = [r.getMessage() for r in caplog.records]
    warned = [i for i, m in enumerate(messages) if "training on the CPU" in m]
    epochs = [i for i, m in enumerate(messages) if "epoch 1 train_loss" in m]
    assert warned and "config/laptop.yaml" in messages[warned[0]]
    assert epochs and warned[0] < epochs[0]  # before the first epoch
    caplog.clear()
    with caplog.at_level("WARNING"):
        train_job("labels_r0_s0", raw, DATA, job_config(epochs=1), out, tmp_path / "b.pt")
    assert not any("training on the CPU" in r.getMessage() for r in caplog.records)


def test_the_job_reads_only_the_verified_files(tmp_path):
    """A run name that is not canonical is refused before any training."""
    raw, out = raw_mnist(tmp_path), outputs(tmp_path)
    with pytest.raises(ValueError, match="not a run name: 'labels_r0.50_s0'"):
        train_job("labels_r0.50_s0", raw, DATA, job_config(), out, tmp_path / "c.pt")
    assert not out["info"].exists()
    assert jobs.Run.from_name("labels_r0.5_s0").ratio == 0.5
