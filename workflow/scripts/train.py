from pathlib import Path

from hw5repro.logs import end_history, setup_logging
from hw5repro.runlock import hold_run_lock
from hw5repro.settings import job_config
from hw5repro.training import train_job

RUN_DIR = Path(snakemake.output.metrics).parent  # noqa: F821 - injected by Snakemake
# The log keeps earlier attempts of this job (e.g. before SLURM requeued it), which
# results/runs/{run}/attempts.log holds until the job succeeds.
setup_logging(snakemake.log[0], mode="a", history=RUN_DIR / "attempts.log")  # noqa: F821
# One job per run at a time: a duplicate (e.g. resubmitted after a killed Snakemake) fails fast.
hold_run_lock(RUN_DIR)
train_job(
    run_id=snakemake.wildcards.run_id,  # noqa: F821
    subset_path=snakemake.input.subset,  # noqa: F821
    corrupted_path=snakemake.input.corrupted,  # noqa: F821
    # result settings (params) + operational ones (checkpoint_every, ...) from the config
    config=job_config(snakemake.params.settings, snakemake.config),  # noqa: F821
    outputs=snakemake.output,  # noqa: F821
    checkpoint=snakemake.params.checkpoint,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
)
end_history(RUN_DIR / "attempts.log")
