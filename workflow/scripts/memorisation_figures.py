from pathlib import Path

from hw5repro.pipeline.logs import setup_logging
from hw5repro.reporting.figures import figures_job

setup_logging(snakemake.log[0])
figures_job(
    snakemake.input.epochs,
    snakemake.input.final,
    snakemake.input.summary,
    snakemake.params.threshold,
    Path(snakemake.output.png[0]).parent,
    workers=snakemake.threads,
)
