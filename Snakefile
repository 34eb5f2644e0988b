# HW5 of "Mathematical Foundations of Deep Neural Networks", reproduced from raw data to report.
# Rules live in workflow/rules, their logic in the hw5repro package (workflow/hw5repro).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


wildcard_constraints:
    run_id=RUN_NAME_PATTERN,


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/problems.smk"
include: "workflow/rules/report.smk"


# Only training needs a cluster node (a GPU, minutes to hours). Every other job takes seconds and
# runs where Snakemake runs (with an executor such as SLURM: on the submitting node), instead of
# waiting for a slot and a status poll; fetch_mnist also needs the network, which login nodes have.
localrules:
    all,
    fetch_mnist,
    memorisation_tables,
    memorisation_figures,
    problem_backprop,
    problem_vanishing_gradients,
    problem_momentum,
    problem_receptive_field,
    problem_inception_cost,
    provenance,
    report,
    report_pdf,


rule all:
    input:
        run_outputs("metrics.csv"),
        MEMORISATION_OUTPUTS,
        PROBLEM_OUTPUTS,
        REPORT_OUTPUTS,
