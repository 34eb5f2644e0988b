from pathlib import Path

from hw5repro.logs import setup_logging
from hw5repro.runfiles import link_run_files

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
link_run_files(
    Path(snakemake.input.group) / snakemake.wildcards.run_id,  # noqa: F821
    dict(snakemake.output.items()),  # noqa: F821
)
