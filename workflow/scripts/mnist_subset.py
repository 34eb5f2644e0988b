from pathlib import Path

import torch

from hw5repro.logs import setup_logging
from hw5repro.mnist import make_subset

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
p = snakemake.params  # noqa: F821
subset = make_subset(Path(snakemake.input.raw[0]).parent, p.train_size, p.test_size, p.seed)  # noqa: F821
torch.save(subset, snakemake.output[0])  # noqa: F821
