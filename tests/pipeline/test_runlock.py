"""One writer per run: the training job's lock on results/runs/{run}/.lock (issue 11, item 8)."""

import json
import os
import signal
import subprocess
import sys

import pytest

from helpers import REPO
from hw5repro.pipeline.runlock import RunLockedError, run_lock

HOLD = """
import sys, time
from hw5repro.pipeline.runlock import hold_run_lock
hold_run_lock(sys.argv[1])  # as workflow/scripts/train.py: held until the process exits
print("locked", flush=True)
time.sleep(120)
"""
TRY = """
import sys
from hw5repro.pipeline.runlock import run_lock
with run_lock(sys.argv[1]):
    print("got it", flush=True)
"""


def _python(code: str, *args: str):
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow"), "SLURM_JOB_ID": "4242"}
    return [sys.executable, "-c", code, *args], env


@pytest.fixture
def holder(tmp_path):
    """A second process holding the lock of run ``labels_r1_s0`` (as a running SLURM job)."""
    run_dir = tmp_path / "results" / "runs" / "labels_r1_s0"
    cmd, env = _python(HOLD, str(run_dir))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield run_dir, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_second_process_fails_fast_naming_the_holder(holder):
    run_dir, proc = holder
    cmd, env = _python(TRY, str(run_dir))
    env.pop("SLURM_JOB_ID")
    other = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert other.returncode == 1 and "got it" not in other.stdout
    assert "RunLockedError: run labels_r1_s0 is already being trained by" in other.stderr
    assert f"SLURM job 4242 (pid {proc.pid} on " in other.stderr
    assert "scancel" in other.stderr and "profiles/slurm/README.md" in other.stderr
    # In this process too (another open file description: flock excludes it as well).
    with pytest.raises(RunLockedError, match="labels_r1_s0 is already being trained"):
        with run_lock(run_dir):
            pytest.fail("the lock was granted twice")


def test_lock_is_released_when_the_holder_is_killed(holder):
    run_dir, proc = holder
    holder_record = json.loads((run_dir / ".lock").read_text())
    assert holder_record["pid"] == proc.pid and holder_record["slurm_job_id"] == "4242"
    proc.send_signal(signal.SIGKILL)  # as a job killed by SLURM or a node reboot
    proc.wait(timeout=10)
    cmd, env = _python(TRY, str(run_dir))
    after = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == "got it"


def test_lock_is_released_after_the_block(tmp_path):
    run_dir = tmp_path / "runs" / "labels_r0_s0"
    with run_lock(run_dir) as path:
        assert path == run_dir / ".lock"
        assert json.loads(path.read_text())["pid"] == os.getpid()
    with run_lock(run_dir):
        pass
    assert path.read_text() == ""  # holder record cleared on release
