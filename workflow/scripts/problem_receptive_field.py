from hw5repro.pipeline.logs import setup_logging
from hw5repro.problems.receptive_field import write_receptive_field

setup_logging(snakemake.log[0])
out = snakemake.output
write_receptive_field(out.results, out.fields, out.checks, out.figure)
