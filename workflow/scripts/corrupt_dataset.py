import torch

from hw5repro.corruption import make_corrupted
from hw5repro.experiment import Run
from hw5repro.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
subset = torch.load(snakemake.input.subset, weights_only=True)  # noqa: F821
artifact = make_corrupted(subset, Run.from_name(snakemake.wildcards.run_id))  # noqa: F821
torch.save(artifact, snakemake.output[0])  # noqa: F821
