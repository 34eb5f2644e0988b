from hw5repro.logs import setup_logging
from hw5repro.settings import job_config
from hw5repro.training import train_job

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
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
