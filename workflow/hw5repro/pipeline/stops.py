"""A job stopped on purpose by a signal is no error: its log says what happened and what comes
next, at WARNING and without a traceback.

SLURM sends SIGTERM before it preempts or requeues a job and (with the profile's
``--signal=TERM@300``) before the job's time limit; the training loop then writes a checkpoint
and raises a :class:`StoppedBySignal` (:class:`hw5repro.training.Preempted`). The job still
exits non-zero, so that Snakemake does not take its outputs for complete.
"""

from __future__ import annotations

import logging

#: What happens to a job stopped by SIGTERM after its checkpoint, in either case.
NEXT_STEPS = (
    "a job that SLURM requeued (preemption, node failure, scontrol requeue) starts again as the "
    "same SLURM job after SLURM's hold of about 2 minutes and resumes from the checkpoint; a job "
    "stopped before its time limit is not requeued: raise resources.train.runtime and rerun the "
    "workflow, which resumes from the checkpoint"
)


class StoppedBySignal(RuntimeError):
    """The job stopped on a signal after saving its state (a checkpoint)."""


def report_stop(log: logging.Logger, error: BaseException) -> None:
    """One WARNING line: what stopped the job and what comes next."""
    log.warning("job stopped: %s. Next: %s", error, NEXT_STEPS)
