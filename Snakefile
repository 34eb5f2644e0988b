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


rule all:
    input:
        run_outputs("metrics.csv"),
        MEMORISATION_OUTPUTS,
        PROBLEM_OUTPUTS,
        REPORT_OUTPUTS,
