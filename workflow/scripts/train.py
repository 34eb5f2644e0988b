from pathlib import Path

from hw5repro.logs import end_history, fail_on_sigterm, setup_logging
from hw5repro.pipeline.run_log import keep_run_log

params = snakemake.params  # noqa: F821 - injected by Snakemake
# The log keeps earlier attempts of this job (e.g. before SLURM requeued it), which the attempts
# file (results/runs/{run}/attempts.log for a single run) holds until the job succeeds.
setup_logging(snakemake.log[0], mode="a", history=params.attempts)  # noqa: F821
# ... and every run's own log, which Snakemake never removes (hw5repro.pipeline.run_log).
for run_log in params.run_logs:
    keep_run_log(run_log, snakemake.wildcards.job)  # noqa: F821
# Before PyTorch's import (seconds): a SIGTERM from here on is an error in the log.
fail_on_sigterm()

from hw5repro.runlock import hold_run_lock  # noqa: E402
from hw5repro.settings import job_config  # noqa: E402
from hw5repro.training import train_job  # noqa: E402

# One job per run at a time: a duplicate (e.g. resubmitted after a killed Snakemake) fails fast.
for checkpoint in params.checkpoints:
    hold_run_lock(Path(checkpoint).parent)
train_job(
    runs=params.runs,
    raw_dir=Path(snakemake.input.data).parent,  # noqa: F821
    data=params.data,
    # result settings (params) + operational ones (checkpoint_every, ...) from the config
    config=job_config(params.settings, snakemake.config),  # noqa: F821
    outputs=params.run_files,
    checkpoint_paths=params.checkpoints,
    threads=snakemake.threads,  # noqa: F821
    job=snakemake.wildcards.job,  # noqa: F821
)
end_history(params.attempts)
