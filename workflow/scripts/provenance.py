from hw5repro.pipeline.logs import setup_logging
from hw5repro.reporting.provenance import provenance_job

setup_logging(snakemake.log[0])
provenance_job(
    config=snakemake.params.config,
    run_json=snakemake.input.runs,
    benchmark_files=snakemake.input.benchmarks,
    benchmark_root=snakemake.params.benchmark_root,
    git=snakemake.params.git,
    output=snakemake.output[0],
)
