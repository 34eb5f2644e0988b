"""Logging set-up shared by the thin Snakemake scripts, and what a job's log says when it stops:
a job checkpointed on SIGTERM (:class:`StoppedBySignal`) logs a WARNING without a traceback, but
still exits non-zero so that Snakemake does not take its outputs for complete."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

NEXT_STEPS = (
    "a job that SLURM requeued (preemption, node failure, scontrol requeue) starts again as the "
    "same SLURM job after SLURM's hold of about 2 minutes and resumes from the checkpoint; a job "
    "stopped before its time limit is not requeued: raise resources.train.runtime and rerun the "
    "workflow, which resumes from the checkpoint"
)


def _where() -> str:
    """Where this job runs, for the line that starts its log: ``(pid N on host, SLURM job J)``."""
    slurm = os.environ.get("SLURM_JOB_ID")
    return f"(pid {os.getpid()} on {socket.gethostname()}{f', SLURM job {slurm}' if slurm else ''})"


class StoppedBySignal(RuntimeError):
    """The job stopped on a signal after saving its state (a checkpoint)."""


def setup_logging(
    log_path: str | Path | None = None,
    level: int = logging.INFO,
    mode: str = "w",
    history: str | Path | None = None,
) -> None:
    """Log to ``log_path`` and to stderr; uncaught errors land in the log. ``history`` keeps every
    attempt's lines until :func:`end_history` (Snakemake removes the log before each attempt)."""
    if mode not in {"w", "a"}:
        raise ValueError(f"log mode must be 'w' or 'a', got {mode!r}")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        if history is not None and Path(history).is_file():
            with open(history, "rb") as src, open(log_path, "wb") as dst:
                shutil.copyfileobj(src, dst)
            mode = "a"
        handlers.append(logging.FileHandler(log_path, mode=mode))
    if history is not None:
        Path(history).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(history, mode="a"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )

    if mode == "a" or history is not None:
        logging.getLogger("hw5repro").info("---- job started %s", _where())

    def excepthook(kind, value, tb):
        if issubclass(kind, StoppedBySignal):
            logging.getLogger("hw5repro").warning("job stopped: %s. Next: %s", value, NEXT_STEPS)
            return
        # a SIGTERM's message says all: where the signal came is no error's cause
        trace = None if issubclass(kind, Terminated) else (kind, value, tb)
        logging.getLogger("hw5repro").error("job failed: %s", value, exc_info=trace)

    sys.excepthook = excepthook


class Terminated(BaseException):
    """SIGTERM outside the training loop; a BaseException so no ``except Exception`` swallows it."""


def fail_on_sigterm() -> None:
    """From here on a SIGTERM ends the job with an error in its log; a second one is ignored."""

    def handle(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated(
            "stopped by SIGTERM outside the training loop (before its first epoch or after its "
            "last), where no checkpoint is due; a restarted job resumes from the last one"
        )

    signal.signal(signal.SIGTERM, handle)


def end_history(history: str | Path) -> None:
    """The job succeeded: its log is complete, the attempts' history is no longer needed."""
    root = logging.getLogger()
    path = os.path.abspath(history)
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler) and handler.baseFilename == path:
            root.removeHandler(handler)
            handler.close()
    Path(history).unlink(missing_ok=True)


def keep_run_log(path: str | Path, job: str) -> Path:
    """Also append every log line to ``path``, a run's own log that Snakemake never removes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handler = logging.FileHandler(path, mode="a")
    formatters = [h.formatter for h in root.handlers if h.formatter is not None]
    handler.setFormatter(formatters[0] if formatters else logging.Formatter())
    message, args = "---- job %s started %s", (job, _where())
    handler.handle(logging.LogRecord("hw5repro", logging.INFO, __file__, 0, message, args, None))
    root.addHandler(handler)
    return path
