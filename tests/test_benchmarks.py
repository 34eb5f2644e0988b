"""The benchmark scripts run on the CPU and write complete records (tiny settings)."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import paper_sweep  # noqa: E402
import train_throughput  # noqa: E402


def test_throughput_record(tmp_path):
    record = train_throughput.main(
        [
            "--device",
            "cpu",
            "--width",
            "0.125",
            "--images",
            "128",
            "--epochs",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    saved = json.loads((tmp_path / "train_throughput_cpu_w0.125.json").read_text())
    assert saved["speedup"] == pytest.approx(record["speedup"])
    assert saved["seed_style_images_per_s"] > 0 and saved["fast_images_per_s"] > 0
    # forward+backward FLOPs of the 1/8-width model, counted by torch.utils.flop_counter
    assert saved["train_flops_per_image"] == pytest.approx(70_676_688, rel=1e-6)


def test_paper_scale_flops_per_image():
    import torch

    from hw5repro.model import AlexNet

    flops = train_throughput.flops_per_image(AlexNet(), torch.device("cpu"), batch=2)
    assert 4.0e9 < flops < 5.0e9  # about 4.5 GFLOP per training image, as the issue estimates


def test_paper_sweep_runs_every_ratio(tmp_path, mnist_dir):
    record = paper_sweep.main(
        [
            "--mnist",
            str(mnist_dir),
            "--out",
            str(tmp_path),
            "--epochs",
            "1",
            "--width",
            "0.125",
            "--train-size",
            "128",
            "--test-size",
            "100",
            "--device",
            "cpu",
        ]
    )
    epochs = pd.read_csv(tmp_path / "epochs.csv")
    assert sorted(epochs["ratio"].unique()) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert set(record["runs"]) == {
        f"labels_r{r}_s0" for r in ("0", "0.2", "0.4", "0.6", "0.8", "1")
    }
    assert json.loads(Path(tmp_path / "sweep.json").read_text())["sweep_train_seconds"] > 0
