from pathlib import Path

from hw5repro.logs import setup_logging
from hw5repro.mnist import fetch
from hw5repro.pipeline.reruns import write_manifest

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
# data.local_dir is not a param: where verified files come from does not change the result.
raw_dir = Path(snakemake.output.raw[0]).parent  # noqa: F821
fetch(raw_dir, snakemake.config["data"]["local_dir"])  # noqa: F821
write_manifest(raw_dir, snakemake.output.manifest)  # noqa: F821
