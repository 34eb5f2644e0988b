"""The job logs: the training log is appended across attempts (issue 11, item 8)."""

import os
import subprocess
import sys

import pytest

from conftest import REPO
from hw5repro.logs import setup_logging

ATTEMPT = """
import logging, sys
from hw5repro.logs import setup_logging
setup_logging(sys.argv[1], mode=sys.argv[2])
logging.getLogger("hw5repro.training").info("attempt %s", sys.argv[3])
"""


def _attempt(log, mode, n, slurm_job):
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), "SLURM_JOB_ID": slurm_job}
    subprocess.run(
        [sys.executable, "-c", ATTEMPT, str(log), mode, str(n)], env=env, check=True, timeout=60
    )


def test_append_mode_keeps_the_first_attempt(tmp_path):
    log = tmp_path / "logs" / "train" / "labels_r1_s0.log"
    _attempt(log, "a", 1, "101")
    _attempt(log, "a", 2, "101")  # the same SLURM job, requeued after preemption
    lines = log.read_text().splitlines()
    assert len(lines) == 4, lines
    assert "---- job started (pid" in lines[0] and lines[0].endswith(", SLURM job 101)")
    assert lines[1].endswith("hw5repro.training: attempt 1")
    assert "---- job started (pid" in lines[2]
    assert lines[3].endswith("hw5repro.training: attempt 2")


def test_write_mode_truncates(tmp_path):
    log = tmp_path / "x.log"
    _attempt(log, "w", 1, "7")
    _attempt(log, "w", 2, "7")
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and lines[0].endswith("attempt 2")


def test_bad_mode_is_named(tmp_path):
    with pytest.raises(ValueError, match="log mode must be 'w' or 'a', got 'x'"):
        setup_logging(tmp_path / "x.log", mode="x")
