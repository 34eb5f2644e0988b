"""Each epoch's evaluation, inline or overlapped with the next epoch's training
(hw5repro.evaluation). On the CPU the overlapped schedule has no second stream; it defers reading
each epoch's result until the next epoch has trained, which is what these tests exercise (the
CUDA side is benchmarks/test_cuda.py)."""

import contextlib

import pandas as pd
import pytest
import torch
from test_training import TIMING, small_settings, toy_data

import hw5repro.training as training
from hw5repro.device import DeviceError
from hw5repro.evaluation import EpochEvaluator
from hw5repro.runset import make_runs

CPU = torch.device("cpu")


def assert_same_metrics(runs_a, runs_b):
    """Every run's metrics equal, exactly (NaN where a test set was not evaluated), timing aside."""
    assert len(runs_a) == len(runs_b)
    for a, b in zip(runs_a, runs_b, strict=True):
        frames = [pd.DataFrame(rows).drop(columns=sorted(TIMING)) for rows in (a, b)]
        pd.testing.assert_frame_equal(*frames, check_exact=True)


@pytest.mark.parametrize("k", [1, 2], ids=["one run", "two runs fused"])
def test_overlapped_evaluation_gives_the_inline_metrics_checkpoints_and_resumes(
    tmp_path, monkeypatch, k
):
    datas, seeds = [toy_data(seed=i) for i in range(k)], list(range(k))
    settings = small_settings(epochs=5, checkpoint_every=2, eval_every=2)
    inline, _, info = training.train_runs(datas, settings, seeds, progress=False)
    assert info["eval_overlap"] is False  # auto: inline on the CPU
    monkeypatch.setattr(training, "resolve_eval_overlap", lambda spec, device: True)
    paths = [tmp_path / f"run{i}.pt" for i in range(k)]
    overlapped, _, info = training.train_runs(  # (no checkpoint after the last epoch)
        datas, settings, seeds, checkpoint_paths=paths, progress=False, final_checkpoint=False
    )
    assert info["eval_overlap"] is True
    assert_same_metrics(overlapped, inline)
    assert all(row["eval_seconds"] > 0 and row["epoch_seconds"] > 0 for row in overlapped[0])
    # the last checkpoint (epoch 4) holds the metrics of epochs 1-4: the pending evaluation of
    # epoch 4 was read before it was written
    for path in paths:
        saved = torch.load(path, weights_only=True)
        assert saved["epoch"] == 4 and [r["epoch"] for r in saved["metrics"]] == [1, 2, 3, 4]
    resumed, _, info = training.train_runs(
        datas, settings, seeds, checkpoint_paths=paths, progress=False
    )
    assert info["resumed_from_epoch"] == 4
    assert_same_metrics(resumed, inline)


def test_overlapped_schedule_reads_each_epoch_once_the_next_has_trained():
    """The first evaluation is read at once (cuDNN's autotuning runs undisturbed), every later
    one when the next epoch is submitted, the last by drain(); each holds the metrics of the
    weights it was submitted with, not of the weights trained since."""
    settings = small_settings()
    runs = make_runs(
        [toy_data()], settings, [0], CPU, torch.contiguous_format, contextlib.nullcontext
    )
    inline = EpochEvaluator(runs, CPU, overlap=False)
    overlapped = EpochEvaluator(runs, CPU, overlap=True)
    losses = torch.linspace(2.0, 1.0, 8)  # 256 images in batches of 32
    read, expected = [], []
    for epoch in range(3):
        (now,) = inline.submit(epoch, inline.start(), losses, with_test=True)
        expected.append(now.values)
        read.append(overlapped.submit(epoch, overlapped.start(), losses, with_test=True))
        with torch.no_grad():  # the next epoch "trains": new weights
            for p in runs.model.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    read.append(overlapped.drain())
    assert [[r.epoch for r in results] for results in read] == [[0], [], [1], [2]]
    assert [r.values for results in read for r in results] == expected
    assert len({str(values) for values in expected}) == 3  # the weights did change
    assert overlapped.drain() == []


def test_eval_overlap_setting_on_the_cpu():
    _, _, info = training.train(
        toy_data(n=64), small_settings(epochs=1, eval_overlap="auto"), seed=0, progress=False
    )
    assert info["eval_overlap"] is False
    with pytest.raises(DeviceError, match="training.eval_overlap is true but training runs on cpu"):
        training.train(
            toy_data(n=64), small_settings(epochs=1, eval_overlap=True), seed=0, progress=False
        )
