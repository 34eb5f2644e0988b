"""Logging set-up shared by the thin Snakemake scripts."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def setup_logging(log_path: str | Path | None = None, level: int = logging.INFO) -> None:
    """Log to ``log_path`` (one line per event) and to stderr; uncaught errors land in the log."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )

    def excepthook(kind, value, tb):
        logging.getLogger("hw5repro").error("job failed: %s", value, exc_info=(kind, value, tb))

    sys.excepthook = excepthook
