from hw5repro.backprop import write_backprop
from hw5repro.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
out = snakemake.output  # noqa: F821
write_backprop(out.results, out.comparison, out.table, out.gradients, out.figure)
