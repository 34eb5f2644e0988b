"""A training job run again for a finished run: its run's own log keeps every job's lines, and a
finished run's checkpoint of other settings is removed, not set aside."""

from __future__ import annotations

import json
import logging

from helpers import job_config, raw_mnist
from hw5repro.pipeline.logs import keep_run_log, setup_logging
from hw5repro.training.job import train_job

RUN = "labels_r1_s0"
DATA = {"seed": 0, "train_size": 96, "test_size": None}
FILES = {"metrics": "metrics.csv", "model": "model.pt", "info": "run.json"}


def _job(tmp_path, raw, config):
    run_dir = tmp_path / "runs" / RUN
    outputs = {key: run_dir / name for key, name in FILES.items()}
    train_job(RUN, raw, DATA, config, outputs, run_dir / "checkpoint.pt")
    return outputs


def test_the_run_log_keeps_every_jobs_lines_and_says_already_trained(tmp_path):
    raw, log = raw_mnist(tmp_path), tmp_path / "train.log"
    run_log = tmp_path / "runs" / RUN / "train.log"
    config = job_config(epochs=3, checkpoint_every=2)
    try:
        setup_logging(log)
        keep_run_log(run_log, RUN)
        outputs = _job(tmp_path, raw, config)
        for path in outputs.values():  # as Snakemake removes a job's outputs before rerunning it
            path.unlink()
        setup_logging(log)  # the rerun, a new process: a new job log; the run's log goes on
        keep_run_log(run_log, RUN)
        outputs = _job(tmp_path, raw, config)
    finally:
        logging.getLogger().handlers.clear()
    info = json.loads(outputs["info"].read_text())
    lines = run_log.read_text().splitlines()
    trained = [i for i, line in enumerate(lines) if f"{RUN} epoch " in line]
    starts = [i for i, line in enumerate(lines) if f"---- job {RUN} started" in line]
    assert len(trained) == 3 and len(starts) == 2 and trained[-1] < starts[1]
    (already,) = [line for line in lines[starts[1] :] if "already trained" in line]
    assert already.endswith(
        f"{RUN}: already trained (3 epochs, fingerprint {info['fingerprint'][:12]}): "
        "outputs written again from its checkpoint"
    )
    assert already in log.read_text() and " epoch 1 " not in log.read_text()


def test_a_finished_runs_checkpoint_of_other_settings_is_removed_not_set_aside(tmp_path, caplog):
    raw = raw_mnist(tmp_path)
    _job(tmp_path, raw, job_config(epochs=2))
    with caplog.at_level("INFO"):
        outputs = _job(tmp_path, raw, job_config(epochs=2, lr=0.01))
    assert json.loads(outputs["info"].read_text())["resumed_from_epoch"] == 0
    assert "of a finished training with other settings removed" in caplog.text
    names = sorted(p.name for p in (tmp_path / "runs" / RUN).iterdir())
    assert names == ["checkpoint.pt", *sorted(FILES.values())]
