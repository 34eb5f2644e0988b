from pathlib import Path

from hw5repro.pipeline.logs import end_history, fail_on_sigterm, keep_run_log, setup_logging

params = snakemake.params
# The log keeps earlier attempts of this job (e.g. before SLURM requeued it), which the attempts
# file beside the run's checkpoint holds until the job succeeds ...
setup_logging(snakemake.log[0], mode="a", history=params.attempts)
# ... and the run's own log, which Snakemake never removes, keeps every job's lines.
keep_run_log(params.run_log, snakemake.wildcards.run_id)
# Before PyTorch's import (seconds): a SIGTERM from here on is an error in the log.
fail_on_sigterm()

from hw5repro.pipeline.config import job_config  # noqa: E402
from hw5repro.pipeline.runlock import hold_run_lock  # noqa: E402
from hw5repro.training.job import train_job  # noqa: E402

# One job per run at a time: a duplicate (e.g. resubmitted after a killed Snakemake) fails fast.
hold_run_lock(Path(params.checkpoint).parent)
train_job(
    run=snakemake.wildcards.run_id,
    raw_dir=Path(snakemake.input.data).parent,
    data=params.data,
    # result settings (params) + operational ones (checkpoint_every, ...) from the config
    config=job_config(params.settings, snakemake.config),
    outputs=dict(snakemake.output.items()),
    checkpoint=params.checkpoint,
    threads=snakemake.threads,
)
end_history(params.attempts)
