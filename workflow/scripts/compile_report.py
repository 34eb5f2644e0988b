from hw5repro.logs import setup_logging
from hw5repro.report import compile_pdf

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
compile_pdf(snakemake.input.tex, snakemake.output[0])  # noqa: F821
