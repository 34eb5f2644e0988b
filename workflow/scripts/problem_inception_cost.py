from hw5repro.pipeline.logs import setup_logging
from hw5repro.problems.inception_cost import write_inception_cost

setup_logging(snakemake.log[0])
out = snakemake.output
write_inception_cost(out.results, out.module1, out.module2, out.figure)
