from hw5repro.logs import setup_logging
from hw5repro.vanishing_gradients import write_vanishing_gradients

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
out = snakemake.output  # noqa: F821
write_vanishing_gradients(out.results, out.layers, out.table_b, out.table_A, out.figure)
