from pathlib import Path

from hw5repro.data.mnist import fetch
from hw5repro.pipeline.logs import setup_logging

setup_logging(snakemake.log[0])
# data.local_dir is not a param: where verified files come from does not change the result.
fetch(Path(snakemake.output[0]).parent, snakemake.config["data"]["local_dir"])
