"""A training job stopped by SIGTERM logs what happened and what comes next at WARNING, without a
traceback, and still exits non-zero."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from helpers import REPO

JOB = """
import sys, torch
sys.path.insert(0, {tests!r})
from hw5repro.pipeline.logs import setup_logging
from hw5repro.training.loop import train
from helpers import small_settings, toy_data
setup_logging({log!r}, mode="a")
torch.set_num_threads(1)
train(toy_data(n=512), small_settings(epochs=200, checkpoint_every=1), seed=0,
      checkpoint={ckpt!r}, progress=False, desc="labels_r1_s0")
"""


def test_a_preempted_training_logs_a_warning_with_the_next_steps(tmp_path):
    log, ckpt = tmp_path / "train.log", tmp_path / "checkpoint.pt"
    script = JOB.format(tests=str(REPO / "tests"), log=str(log), ckpt=str(ckpt))
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline:  # in the epoch loop
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr  # still a failure: the outputs are not written
    text = log.read_text()
    assert "Traceback" not in text and " ERROR " not in text, text
    assert "Traceback" not in stderr, stderr
    last = text.splitlines()[-1]
    assert " WARNING hw5repro: job stopped: labels_r1_s0: stopped by SIGTERM after epoch " in last
    assert "checkpoint written" in last
    assert "after SLURM's hold of about 2 minutes and resumes from the checkpoint" in last
    assert "raise resources.train.runtime and rerun the workflow" in last
