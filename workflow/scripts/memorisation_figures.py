from pathlib import Path

from hw5repro.figures import figures_job
from hw5repro.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
figures_job(
    snakemake.input.epochs,  # noqa: F821
    snakemake.input.final,  # noqa: F821
    snakemake.input.summary,  # noqa: F821
    snakemake.params.threshold,  # noqa: F821
    Path(snakemake.output.png[0]).parent,  # noqa: F821
    workers=snakemake.threads,  # noqa: F821
)
