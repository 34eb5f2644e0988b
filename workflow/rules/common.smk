# Configuration validation (once), the run grid and input functions shared by all steps.
import os
import sys
from pathlib import Path

# Parse with the hw5repro package of this checkout, as its jobs run with (not another installed copy).
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from snakemake.io import strip_wildcard_constraints
from snakemake.utils import validate

from hw5repro.codedeps import module_dependencies
from hw5repro.experiment import RUN_NAME_PATTERN, runs_from_config
from hw5repro.mnist import FILES as MNIST_FILES, check_local_dir
from hw5repro.settings import result_config, training_params

# Fills every key a preset leaves out with the schema's default (the paper configuration).
validate(config, schema="../../config/schema.yaml", set_default=True)
# data.local_dir: checked before any job, not again inside each job (a node need not see it).
if workflow.is_main_process:
    check_local_dir(config["data"]["local_dir"])

REPO = Path(workflow.basedir)
# Jobs import the hw5repro package from this checkout, also inside a conda environment
# (a variable this workflow sets for its jobs, not one it requires from the user).
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO / "workflow"), os.getenv("PYTHONPATH")])
    )
)
ENV = str(REPO / "envs" / "hw5repro.yaml")
RUNS = runs_from_config(config)
RUN_IDS = [run.name for run in RUNS]


def code(script):
    """The package modules a step runs, computed from its imports: ``code("train.py")`` is every
    hw5repro module that workflow/scripts/train.py imports, transitively. Editing one reruns the
    step and what follows."""
    start = REPO / "workflow" / "scripts" / script
    return sorted(map(str, module_dependencies(start, REPO / "workflow" / "hw5repro")))


def template(*names):
    return [str(REPO / "report" / name) for name in names]


def training_settings():
    """Everything that changes a training result (hw5repro.settings splits result from
    operational keys), passed as params so that reruns follow exactly these."""
    return training_params(config)


# What provenance records and the report renders: the configuration without operational keys.
RESULT_CONFIG = result_config(config)


def train_resources():
    res = config["resources"]["train"]
    extra = {"gpu_model": res["gpu_model"]} if res["gpu_model"] else {}
    return {
        "gpu": res["gpu"],
        "mem_mb": res["mem_mb"],
        "runtime": res["runtime"],
        **extra,
    }


def run_outputs(name):
    return expand("results/runs/{run_id}/{name}", run_id=RUN_IDS, name=name)


def job_benchmarks(exclude):
    """An input function: the benchmark file of every job of every rule not in ``exclude``,
    computed from the rules' benchmark: directives once all rules are defined."""

    def files(wildcards):
        return [
            path
            for rule in workflow.rules
            if rule.benchmark and rule.name not in exclude
            for path in expand(
                strip_wildcard_constraints(str(rule.benchmark)), run_id=RUN_IDS
            )
        ]

    return files
