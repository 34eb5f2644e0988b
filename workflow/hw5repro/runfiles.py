"""A fused group's runs at their usual place: results/runs/{run} holds the same files whether the
run was trained alone or in a group (``training.runs_per_job``), so nothing after training knows."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def link_run_files(source_dir: str | Path, outputs: dict[str, str | Path]) -> None:
    """Every output as a hard link to the file of the same name in ``source_dir`` (a copy where
    the file system cannot link); a missing file is a clear error naming it."""
    for output in outputs.values():
        output = Path(output)
        source = Path(source_dir) / output.name
        if not source.is_file():
            raise FileNotFoundError(
                f"{source} is missing: the group's training job did not write this run's "
                f"{output.name}; rerun the job (see its log under results/logs/train)"
            )
        output.parent.mkdir(parents=True, exist_ok=True)
        output.unlink(missing_ok=True)
        try:
            os.link(source, output)
        except OSError:
            shutil.copyfile(source, output)
