"""The job logs: the training log keeps every attempt of a job (issue 11, item 8)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import REPO
from hw5repro.pipeline.logs import setup_logging

ATTEMPT = """
import logging, sys
from hw5repro.pipeline.logs import end_history, setup_logging
log, mode, n, history, succeed = sys.argv[1:]
setup_logging(log, mode=mode, history=history or None)
logging.getLogger("hw5repro.training").info("attempt %s", n)
if succeed == "yes":
    end_history(history)
"""


def _attempt(log, mode, n, slurm_job, history="", succeed="no"):
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), "SLURM_JOB_ID": slurm_job}
    args = [str(log), mode, str(n), str(history), succeed]
    subprocess.run([sys.executable, "-c", ATTEMPT, *args], env=env, check=True, timeout=60)


def test_append_mode_keeps_the_first_attempt(tmp_path):
    log = tmp_path / "logs" / "train" / "labels_r1_s0.log"
    _attempt(log, "a", 1, "101")
    _attempt(log, "a", 2, "101")
    lines = log.read_text().splitlines()
    assert len(lines) == 4, lines
    assert "---- job started (pid" in lines[0] and lines[0].endswith(", SLURM job 101)")
    assert lines[1].endswith("hw5repro.training: attempt 1")
    assert "---- job started (pid" in lines[2]
    assert lines[3].endswith("hw5repro.training: attempt 2")


def test_history_survives_the_removal_of_the_log(tmp_path):
    """As on SLURM: the job is requeued and Snakemake removes its log before the restart."""
    log = tmp_path / "logs" / "train" / "labels_r1_s0.log"
    history = tmp_path / "runs" / "labels_r1_s0" / "attempts.log"
    _attempt(log, "a", 1, "101", history)
    assert history.read_text() == log.read_text()
    log.unlink()  # Snakemake's preparation of the restarted job
    _attempt(log, "a", 2, "101", history, succeed="yes")
    lines = log.read_text().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        lines[0].split(": ", 1)[1],
        "attempt 1",
        lines[2].split(": ", 1)[1],
        "attempt 2",
    ]
    assert lines[0].endswith("SLURM job 101)") and lines[2].endswith("SLURM job 101)")
    assert not history.exists()  # the job succeeded
    # The next run of the job (e.g. with new parameters) starts a new history and log.
    log.unlink()
    _attempt(log, "a", 3, "102", history)
    assert [line.split(": ", 1)[1] for line in log.read_text().splitlines()][1:] == ["attempt 3"]


def test_write_mode_truncates(tmp_path):
    log = tmp_path / "x.log"
    _attempt(log, "w", 1, "7")
    _attempt(log, "w", 2, "7")
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and lines[0].endswith("attempt 2")


def test_bad_mode_is_named(tmp_path):
    with pytest.raises(ValueError, match="log mode must be 'w' or 'a', got 'x'"):
        setup_logging(tmp_path / "x.log", mode="x")


STARTING = """
import sys, time
from hw5repro.pipeline.logs import fail_on_sigterm, setup_logging
setup_logging(sys.argv[1], mode="a")
fail_on_sigterm()
print("ready", flush=True)
for _ in range(600):  # a start-up that would swallow ordinary errors
    try:
        time.sleep(0.1)
    except Exception:
        pass
"""


def test_sigterm_during_start_up_ends_the_job_with_a_line_in_its_log(tmp_path):
    """Before the training loop takes SIGTERM over (the job's imports, data, model), SIGTERM's
    default ended the job without a word; now it fails at once with one line in the log, also
    where the code swallows exceptions, and SLURM's second SIGTERM is ignored."""
    log = tmp_path / "train.log"
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    proc = subprocess.Popen(
        [sys.executable, "-c", STARTING, str(log)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "ready\n"
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 1 and time.monotonic() - start < 10
    lines = log.read_text().splitlines()
    assert "---- job started" in lines[0] and len(lines) == 2, lines
    assert lines[1].endswith(
        "ERROR hw5repro: job failed: stopped by SIGTERM outside the training loop (before its "
        "first epoch or after its last), where no checkpoint is due; a restarted job resumes "
        "from the last one"
    )
