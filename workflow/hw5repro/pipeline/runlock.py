"""One writer per run: an exclusive ``flock`` a training job holds while it writes its outputs, so
the duplicate a rerun submits after Snakemake was killed fails at once. The kernel releases it
however the holder exits; the file stays (removing it races with a job opening it)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".lock"


class RunLockedError(RuntimeError):
    """Another job holds the run's lock."""


def _holder() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _describe(holder_text: str) -> str:
    try:
        holder = json.loads(holder_text)
    except ValueError:
        return "another job (unknown)"
    where = f"pid {holder.get('pid')} on {holder.get('host')}"
    if holder.get("slurm_job_id"):
        where = f"SLURM job {holder['slurm_job_id']} ({where})"
    return f"{where}, since {holder.get('since')}"


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold ``run_dir/.lock`` for the ``with`` block; raise :class:`RunLockedError` if held."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace")
            raise RunLockedError(
                f"run {run_dir.name} is already being trained by {_describe(holder)} "
                f"(lock {path}); two jobs must not write the same outputs. This happens when a "
                "killed Snakemake's jobs still run and the same workflow is started again: "
                "wait for that job to end or cancel it (scancel <jobid>), then rerun "
                "(see profiles/slurm/README.md, 'After Snakemake was killed')."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_held: list = []


def hold_run_lock(run_dir: str | Path) -> Path:
    """Take the run's lock (as :func:`run_lock`) and hold it until this process exits."""
    lock = run_lock(run_dir)
    path = lock.__enter__()
    _held.append(lock)  # keeps the file open, and so the lock held
    return path
