from hw5repro.inception_cost import write_inception_cost
from hw5repro.logs import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
out = snakemake.output  # noqa: F821
write_inception_cost(out.results, out.module1, out.module2, out.figure)
