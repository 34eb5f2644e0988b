from hw5repro.pipeline.logs import setup_logging
from hw5repro.problems.vanishing_gradients import write_vanishing_gradients

setup_logging(snakemake.log[0])
out = snakemake.output
write_vanishing_gradients(out.results, out.layers, out.table_b, out.table_A, out.figure)
