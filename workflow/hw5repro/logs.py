"""Logging set-up shared by the thin Snakemake scripts."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path


def setup_logging(
    log_path: str | Path | None = None, level: int = logging.INFO, mode: str = "w"
) -> None:
    """Log to ``log_path`` (one line per event) and to stderr; uncaught errors land in the log.

    ``mode="a"`` appends (the training job: a job resumed after preemption keeps the first
    attempt's lines); each attempt then starts with a line naming its process and SLURM job."""
    if mode not in {"w", "a"}:
        raise ValueError(f"log mode must be 'w' or 'a', got {mode!r}")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode=mode))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )

    if mode == "a":
        logging.getLogger("hw5repro").info(
            "---- job started (pid %d on %s%s)",
            os.getpid(),
            socket.gethostname(),
            f", SLURM job {os.environ['SLURM_JOB_ID']}" if "SLURM_JOB_ID" in os.environ else "",
        )

    def excepthook(kind, value, tb):
        logging.getLogger("hw5repro").error("job failed: %s", value, exc_info=(kind, value, tb))

    sys.excepthook = excepthook
