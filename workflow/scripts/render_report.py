from pathlib import Path

from hw5repro.logs import setup_logging
from hw5repro.report import report_job

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
report_job(
    sections_file=snakemake.input.sections[0],  # noqa: F821 - report/sections.yaml
    report_dir=Path(snakemake.input.templates[0]).parent,  # noqa: F821 - report/
    config=snakemake.params.config,  # noqa: F821
    provenance_path=snakemake.input.provenance,  # noqa: F821
    outputs=snakemake.output,  # noqa: F821
)
