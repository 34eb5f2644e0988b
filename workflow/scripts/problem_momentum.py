from hw5repro.pipeline.logs import setup_logging
from hw5repro.problems.momentum import write_momentum

setup_logging(snakemake.log[0])
out = snakemake.output
write_momentum(out.results, out.steps, out.table, out.figure)
