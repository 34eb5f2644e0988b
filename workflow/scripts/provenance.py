from hw5repro.logs import setup_logging
from hw5repro.provenance import provenance_job

setup_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
provenance_job(
    config=snakemake.params.config,  # noqa: F821
    run_json=snakemake.input.runs,  # noqa: F821
    benchmark_files=snakemake.input.benchmarks,  # noqa: F821
    benchmark_root=snakemake.params.benchmark_root,  # noqa: F821
    git=snakemake.params.git,  # noqa: F821
    output=snakemake.output[0],  # noqa: F821
)
