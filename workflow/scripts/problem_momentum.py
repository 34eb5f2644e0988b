from hw5repro.logs import setup_logging
from hw5repro.momentum import write_momentum

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
out = snakemake.output  # noqa: F821
write_momentum(out.results, out.steps, out.table, out.figure)
