from hw5repro.pipeline.logs import setup_logging
from hw5repro.reporting.pdf import compile_pdf

setup_logging(snakemake.log[0])
compile_pdf(snakemake.input.tex, snakemake.output[0])
