"""The benchmark scripts run on the CPU and write complete records (tiny settings)."""

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import paper_sweep  # noqa: E402
import plot_gpu_records  # noqa: E402
import train_throughput  # noqa: E402
import workflow_record  # noqa: E402
from seed_style_loop import seed_style_epoch  # noqa: E402


def test_throughput_record(tmp_path):
    args = ["--device", "cpu", "--width", "0.125", "--images", "128", "--epochs", "1"]
    record = train_throughput.main([*args, "--eval-batch-size", "64", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "train_throughput_cpu_w0.125.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert saved["seed_style_images_per_s"] > 0 and saved["eager_images_per_s"] > 0
    # on a CPU the fast loop is the eager one: CUDA graphs and Triton kernels need a GPU
    assert saved["fast_loop"] == "eager" and "graphed_images_per_s" not in saved
    assert saved["fast_images_per_s"] == saved["eager_images_per_s"]
    assert saved["speedup"] == pytest.approx(
        saved["fast_images_per_s"] / saved["seed_style_images_per_s"]
    )
    # forward+backward FLOPs of the 1/8-width model, counted by torch.utils.flop_counter
    assert saved["train_flops_per_image"] == pytest.approx(70_676_688, rel=1e-6)
    assert saved["parameters"] == 140_766 and saved["eval_images_per_s"] > 0


def test_fast_loop_equals_seed_style_loop_in_float32():
    """The benchmark's baseline (the write-up's DataLoader loop) and the workflow's eager loop
    compute the same steps, given the same batch order, weights and dropout stream."""
    import torch

    from hw5repro.training.model import AlexNet
    from hw5repro.training.steps import permutation, train_epoch

    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 28, 28, generator=gen), torch.randint(0, 10, (64,), generator=gen)

    def model_and_optimizer():
        torch.manual_seed(0)
        model = AlexNet(width=0.125, dropout=0.0)
        return model, torch.optim.SGD(model.parameters(), lr=0.05)

    model, opt = model_and_optimizer()
    order = torch.Generator().manual_seed(3)
    fast = train_epoch(model, opt, x, y, 8, order, contextlib.nullcontext)
    model, opt = model_and_optimizer()
    perm = permutation(64, torch.Generator().manual_seed(3), torch.device("cpu"))
    seed_style = seed_style_epoch(model, opt, x, y, 8, torch.device("cpu"), order=perm)
    assert len(seed_style) == 8
    assert torch.allclose(fast, torch.tensor(seed_style), rtol=1e-5, atol=1e-6)


def test_paper_scale_flops_per_image():
    import torch

    from hw5repro.training.model import AlexNet

    flops = train_throughput.flops_per_image(AlexNet(), torch.device("cpu"), batch=2)
    assert 4.0e9 < flops < 5.0e9  # about 4.5 GFLOP per training image, as the issue estimates


def test_paper_sweep_runs_every_ratio(tmp_path, mnist_dir):
    # an overlay, as a user passes a preset; the options override it
    overlay = tmp_path / "chosen.yaml"
    overlay.write_text("training:\n  eval_every: 5\n")
    args = ["--config", str(overlay), "--mnist", str(mnist_dir), "--out", str(tmp_path)]
    args += ["--epochs", "1", "--width", "0.125", "--train-size", "128", "--test-size", "100"]
    record = paper_sweep.main([*args, "--device", "cpu", "--conv-epilogue", "triton"])
    assert record["config"]["training"]["eval_every"] == 5  # from the overlay
    # asked for, but on the CPU every convolution epilogue is PyTorch's
    assert record["config"]["training"]["conv_epilogue"] == "triton"
    assert record["conv_epilogue"] == "torch" and record["cuda_graphs"] is False
    epochs = pd.read_csv(tmp_path / "epochs.csv")
    assert sorted(epochs["ratio"].unique()) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert set(record["runs"]) == {
        f"labels_r{r}_s0" for r in ("0", "0.2", "0.4", "0.6", "0.8", "1")
    }
    assert json.loads(Path(tmp_path / "sweep.json").read_text())["sweep_train_seconds"] > 0


def test_workflow_record_of_a_finished_run(smoke_run, tmp_path):
    out = tmp_path / "workflow.json"
    record = workflow_record.main(
        [
            "--workdir",
            str(smoke_run),
            "--wall",
            "97.5",
            "--command",
            "snakemake --cores 2",
            "--preset",
            "config/smoke.yaml",
            "--out",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved["benchmark"] == "workflow" and saved["workflow_wall_seconds"] == 97.5
    assert saved["runs"] == 12 == len(saved["train_job_seconds"]) == len(record["run_details"])
    assert saved["finished"] is True and saved["train_jobs"] == 12
    assert {"fetch_mnist", "problems/backprop", "report/report"} <= set(saved["other_job_seconds"])
    # each job's seconds outside its epoch loop: its benchmark's wall time less the loop's
    outside = saved["train_job_outside_loop_seconds"]
    assert set(outside) == set(saved["train_job_seconds"])
    loop = json.loads((smoke_run / "results/runs/labels_r1_s0/run.json").read_text())
    expected = saved["train_job_seconds"]["train/labels_r1_s0"] - loop["wall_seconds"]
    assert outside["train/labels_r1_s0"] == pytest.approx(expected, abs=0.01)
    assert all(0 < seconds < saved["train_job_seconds"][job] for job, seconds in outside.items())
    details = saved["run_details"]["labels_r1_s0"]
    assert details["cuda_graphs"] is False and details["epochs"] >= 1
    assert details["conv_epilogue"] == "torch"  # on a CPU
    assert details["cpu_threads"] == 1  # the smoke preset's resources.train.threads
    # checkpoints: the smoke preset writes one every 2 epochs, in the background
    pauses = saved["train_job_checkpoint_pause_seconds"]
    assert set(pauses) == set(saved["train_job_seconds"])
    assert pauses["train/labels_r1_s0"] == pytest.approx(loop["checkpoint_pause_seconds"], abs=1e-3)
    assert details["checkpoint_write_seconds"] > 0 and all(0 < s < 30 for s in pauses.values())
    assert 0 <= details["final_train_acc"] <= 1 and details["eval_seconds"] > 0


def test_workflow_record_refuses_an_unfinished_run(tmp_path):
    with pytest.raises(SystemExit, match="no finished report"):
        workflow_record.main(
            [
                "--workdir",
                str(tmp_path),
                "--wall",
                "1",
                "--command",
                "x",
                "--preset",
                "y",
                "--out",
                str(tmp_path / "w.json"),
            ]
        )


def test_workflow_record_of_a_run_stopped_at_its_limit(tmp_path):
    """--partial: the epochs each run reached, from the training jobs' logs, and the pace's
    projection of the whole run."""
    logs = tmp_path / "results" / "logs" / "train"
    logs.mkdir(parents=True)
    line = "2026-11-27 10:00:00 INFO {} epoch {} train_loss 2.3 train_acc 0.1 test_acc 0.1 (1s)\n"
    for run in ("labels_r0_s0", "gaussian_r0_s0"):
        (logs / f"{run}.log").write_text("".join(line.format(run, e) for e in (1, 2, 3)))
    # a resumed job logs its last epoch again: the later line wins
    (logs / "labels_r0_s1.log").write_text(
        line.format("labels_r0_s1", 1).replace("test_acc 0.1", "test_acc 0.3")
        + "Traceback: interrupted\n"
        + line.format("labels_r0_s1", 1).replace("test_acc 0.1", "test_acc 0.2")
    )
    out = tmp_path / "zhang.json"
    args = ["--workdir", str(tmp_path), "--wall", "70", "--command", "snakemake --cores 8"]
    args += ["--preset", "config/zhang.yaml", "--out", str(out), "--partial"]
    with pytest.raises(SystemExit):
        workflow_record.main(args)  # --partial needs what was asked for
    curves = tmp_path / "zhang_epochs_logged.csv"
    record = workflow_record.main(
        [*args, "--runs", "27", "--epochs", "150", "--logged-epochs", str(curves)]
    )
    assert json.loads(out.read_text()) == record
    assert record["finished"] is False and record["benchmark"] == "workflow"
    assert record["epochs_reached"] == {"labels_r0_s0": 3, "gaussian_r0_s0": 3, "labels_r0_s1": 1}
    assert record["run_epochs_done"] == 7 and record["run_epochs_asked"] == 27 * 150
    assert record["projected_wall_seconds"] == pytest.approx(70 * 27 * 150 / 7)
    logged = pd.read_csv(curves)
    assert list(logged.columns) == ["run", "epoch", "train_loss", "train_acc", "test_acc"]
    assert len(logged) == 7 and logged.groupby("run")["epoch"].max().to_dict() == {
        "gaussian_r0_s0": 3,
        "labels_r0_s0": 3,
        "labels_r0_s1": 1,
    }
    assert logged.set_index("run").loc["labels_r0_s1", "test_acc"] == 0.2
    assert logged["train_loss"].eq(2.3).all()


def test_readme_figures_regenerate_from_the_committed_gpu_csv(tmp_path):
    """The README's command for its figures, with the CSV it names."""
    command = re.search(
        r"python benchmarks/plot_gpu_records\.py --epochs (\S+) --out benchmarks/results/gpu/fig",
        (REPO / "README.md").read_text(),
    )
    csv = REPO / command.group(1)
    written = plot_gpu_records.main(["--epochs", str(csv), "--out", str(tmp_path)])
    # the committed records split by replaced labels: that split, under its own name
    assert [p.name for p in written] == ["test_error.png", "kept_vs_replaced.png"]
    assert all(p.stat().st_size > 10_000 for p in written)
    # a record of today's workflow (its columns; the values are only to draw) splits clean and
    # mislabelled examples
    renamed = pd.read_csv(csv).rename(
        columns={"train_acc_kept": "train_acc_clean", "train_acc_replaced": "train_acc_mislabelled"}
    )
    renamed.to_csv(tmp_path / "now.csv", index=False)
    now = plot_gpu_records.main(["--epochs", str(tmp_path / "now.csv"), "--out", str(tmp_path)])
    assert [p.name for p in now] == ["test_error.png", "clean_vs_mislabelled.png"]
    study = plot_gpu_records.main(
        ["--epochs", str(csv), "--out", str(tmp_path), "--figures", "zhang_figure1"]
    )
    assert [p.name for p in study] == ["zhang_figure1.png"] and study[0].stat().st_size > 10_000


def test_gpu_check_fails_loudly(tmp_path):
    """Without a GPU the check stops at once, saying so, in its log too."""
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks/gpu_check.sh")],
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # this venv's python3
            "OUT": str(tmp_path / "out"),
            "STAGES": "tests",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "no CUDA device" in proc.stdout + proc.stderr
    assert "no CUDA device" in (tmp_path / "out/gpu_check.log").read_text()
