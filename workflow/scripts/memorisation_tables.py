from hw5repro.analysis import tables_job
from hw5repro.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
tables_job(
    snakemake.input.metrics,  # noqa: F821
    snakemake.input.info,  # noqa: F821
    snakemake.params.config,  # noqa: F821
    snakemake.output,  # noqa: F821
)
