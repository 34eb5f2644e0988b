"""A run's own log, kept beside its results across every job that ever worked on it.

Snakemake removes a job's log (``results/logs/train/{run}.log``) before it starts the job again.
After Snakemake was killed, its SLURM jobs may have finished unnoticed; the rerun then runs them
again (in seconds: hw5repro.training.train_job writes the outputs from the last checkpoint) and
their lines, the whole training's, would be lost with the old log. Every training job therefore
also appends its lines to ``results/runs/{run}/train.log``, which no rule declares and Snakemake
never removes: the run's history, attempt after attempt.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path


def keep_run_log(path: str | Path, job: str) -> Path:
    """From here on every log line of this process is also appended to ``path``, after a line
    that names the attempt (job, process, host, SLURM job)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handler = logging.FileHandler(path, mode="a")
    formatters = [h.formatter for h in root.handlers if h.formatter is not None]
    handler.setFormatter(formatters[0] if formatters else logging.Formatter())
    handler.setLevel(logging.NOTSET)
    slurm = os.environ.get("SLURM_JOB_ID")
    handler.handle(
        logging.LogRecord(
            "hw5repro",
            logging.INFO,
            __file__,
            0,
            "---- job %s started (pid %d on %s%s)",
            (job, os.getpid(), socket.gethostname(), f", SLURM job {slurm}" if slurm else ""),
            None,
        )
    )
    root.addHandler(handler)
    return path
