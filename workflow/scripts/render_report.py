from pathlib import Path

from hw5repro.pipeline.logs import setup_logging
from hw5repro.reporting.render import report_job

setup_logging(snakemake.log[0])
report_job(
    sections_file=snakemake.input.sections[0],  # report/sections.yaml
    report_dir=Path(snakemake.input.templates[0]).parent,  # report/
    config=snakemake.params.config,
    provenance_path=snakemake.input.provenance,
    outputs=snakemake.output,
)
