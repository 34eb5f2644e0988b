from hw5repro.logs import setup_logging
from hw5repro.receptive_field import write_receptive_field

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
out = snakemake.output  # noqa: F821
write_receptive_field(out.results, out.fields, out.checks, out.figure)
