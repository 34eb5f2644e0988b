"""A training job whose run already finished with the same fingerprint trains nothing again: it
writes the same outputs from its last checkpoint in seconds and says so in its log."""

from __future__ import annotations

import json
import logging
import time

import pandas as pd
import torch
from test_training import DATA, FILES, _job_config, _raw_mnist

from hw5repro.logs import setup_logging
from hw5repro.pipeline.run_log import keep_run_log
from hw5repro.training import train_job

RUN = "labels_r1_s0"


def _job(tmp_path, raw, config):
    run_dir = tmp_path / "runs" / RUN
    outputs = {key: run_dir / name for key, name in FILES.items()}
    started = time.monotonic()
    train_job([RUN], raw, DATA, config, [outputs], [run_dir / "checkpoint.pt"])
    return outputs, time.monotonic() - started


def test_a_finished_run_is_written_again_from_its_checkpoint_without_training(tmp_path):
    raw = _raw_mnist(tmp_path)
    log = tmp_path / "train.log"
    run_log = tmp_path / "runs" / RUN / "train.log"
    setup_logging(log)
    keep_run_log(run_log, RUN)
    try:
        config = _job_config(epochs=3, checkpoint_every=2)
        outputs, _ = _job(tmp_path, raw, config)
        first = pd.read_csv(outputs["metrics"])
        first_info = json.loads(outputs["info"].read_text())
        model = torch.load(outputs["model"], weights_only=True)
        for path in outputs.values():  # as Snakemake removes a job's outputs before rerunning it
            path.unlink()
        setup_logging(log)  # the rerun, a new process: a new log, the run's log goes on
        keep_run_log(run_log, RUN)
        outputs, seconds = _job(tmp_path, raw, config)
    finally:
        logging.getLogger().handlers.clear()
    again = pd.read_csv(outputs["metrics"])
    info = json.loads(outputs["info"].read_text())
    assert again.equals(first)  # the same rows, timing columns included (the recorded ones)
    assert info["fingerprint"] == first_info["fingerprint"]
    assert (info["resumed_from_epoch"], first_info["resumed_from_epoch"]) == (3, 0)
    rewritten = torch.load(outputs["model"], weights_only=True)
    for key, value in model["state_dict"].items():
        assert torch.equal(rewritten["state_dict"][key], value), key
    assert seconds < 10, seconds
    lines = run_log.read_text().splitlines()
    trained = [i for i, line in enumerate(lines) if f"{RUN} epoch " in line]
    assert len(trained) == 3 and all(" epoch 1 " not in line for line in lines[trained[-1] + 1 :])
    starts = [i for i, line in enumerate(lines) if f"---- job {RUN} started" in line]
    assert len(starts) == 2 and trained[-1] < starts[1]
    (already,) = [line for line in lines[starts[1] :] if "already trained" in line]
    assert already.endswith(
        f"{RUN}: already trained (3 epochs, fingerprint {info['fingerprint'][:12]}): "
        "outputs written again from its checkpoint"
    )
    assert already in log.read_text() and " epoch 1 " not in log.read_text()


def test_a_finished_runs_checkpoint_of_other_settings_is_removed_not_set_aside(tmp_path, caplog):
    raw = _raw_mnist(tmp_path)
    _job(tmp_path, raw, _job_config(epochs=2))
    with caplog.at_level("INFO"):
        outputs, _ = _job(tmp_path, raw, _job_config(epochs=2, lr=0.01))
    assert json.loads(outputs["info"].read_text())["resumed_from_epoch"] == 0
    assert "of a finished training with other settings or data removed" in caplog.text
    names = sorted(p.name for p in (tmp_path / "runs" / RUN).iterdir())
    assert names == ["checkpoint.pt", *sorted(FILES.values())]
