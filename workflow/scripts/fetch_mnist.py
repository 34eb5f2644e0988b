from pathlib import Path

from hw5repro.logs import setup_logging
from hw5repro.mnist import fetch

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
fetch(Path(snakemake.output[0]).parent, snakemake.params.local_dir)  # noqa: F821
