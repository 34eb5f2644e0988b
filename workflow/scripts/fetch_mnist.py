from pathlib import Path

from hw5repro.data.mnist import fetch, write_manifest
from hw5repro.pipeline.logs import setup_logging

setup_logging(snakemake.log[0])
# data.local_dir is not a param: where verified files come from does not change the result.
raw_dir = Path(snakemake.output.raw[0]).parent
fetch(raw_dir, snakemake.config["data"]["local_dir"])
write_manifest(snakemake.output.manifest)
