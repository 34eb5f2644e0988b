from pathlib import Path

from hw5repro.logs import setup_logging
from hw5repro.mnist import fetch

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
# data.local_dir is not a param: where verified files come from does not change the result.
fetch(Path(snakemake.output[0]).parent, snakemake.config["data"]["local_dir"])  # noqa: F821
