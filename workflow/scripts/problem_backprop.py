from hw5repro.pipeline.logs import setup_logging
from hw5repro.problems.backprop import write_backprop

setup_logging(snakemake.log[0])
out = snakemake.output
write_backprop(out.results, out.comparison, out.table, out.gradients, out.figure)
