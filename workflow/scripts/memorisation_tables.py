from hw5repro.pipeline.logs import setup_logging
from hw5repro.reporting.analysis import tables_job

setup_logging(snakemake.log[0])
tables_job(
    snakemake.input.metrics,
    snakemake.input.info,
    snakemake.params.config,
    snakemake.output,
)
