# Configuration validation (once), the run grid and input functions shared by all steps.
import os
import sys
from pathlib import Path

# Parse with the hw5repro package of this checkout, as its jobs run with (not another installed copy).
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from snakemake.io import strip_wildcard_constraints
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from hw5repro.pipeline.codedeps import module_dependencies
from hw5repro.data.experiment import RUN_NAME_PATTERN, runs_from_config
from hw5repro.data.mnist import (
    FILES as MNIST_FILES,
    MANIFEST as MNIST_MANIFEST,
    check_local_dir,
)
from hw5repro.pipeline.config_check import (
    CommandLineError,
    check_configfiles,
    config_error,
    full_errors_wanted,
)
from hw5repro.pipeline.config import load_schema, result_config, training_params

# A repeated --configfile (Snakemake keeps only the last one's files) stops the run before any job.
if workflow.is_main_process:
    try:
        check_configfiles(sys.argv)
    except CommandLineError as error:
        raise WorkflowError(error) from None

# Fills every key a preset leaves out with the schema's default (the paper configuration).
# Snakemake reads a value nested in --config 'section={...}' as text: the error then says so.
# An invalid configuration fails in a few lines (hw5repro.pipeline.config_check).
try:
    validate(config, schema="../../config/schema.yaml", set_default=True)
except WorkflowError as error:
    raise config_error(
        config, load_schema(), error, full=full_errors_wanted(sys.argv)
    ) from None
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


def repo_files(paths):
    """Files of this checkout as inputs. Snakemake records each job's set of input paths, so the
    paths must not change when nothing else did: relative to the working directory when it is
    the checkout's root (the user's case: moving the checkout with its results reruns nothing),
    absolute when it lies elsewhere (``-d``: that folder may then move on its own)."""
    paths = [str(path) for path in paths]
    relative = [os.path.relpath(path) for path in paths]
    if any(path.startswith(os.pardir) for path in relative):
        return paths
    return relative


def code(script):
    """The script of a step and the package modules it runs, computed from its imports:
    ``code("train.py")`` is workflow/scripts/train.py and every hw5repro module it imports,
    transitively. Editing one reruns the step and what follows (compared by content: the
    workflow profile, profiles/default, leaves out Snakemake's time-only ``code`` trigger).
    """
    start = REPO / "workflow" / "scripts" / script
    modules = module_dependencies(start, REPO / "workflow" / "hw5repro")
    return sorted(repo_files([start, *modules]))


def template(*names):
    return repo_files(REPO / "report" / name for name in names)


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


def data_params():
    """What a training job draws its data with (hw5repro.training.job.train_job): the subset's seed
    and sizes. Each run's corruption follows from its name."""
    return {
        "seed": config["seed"],
        "train_size": config["data"]["train_size"],
        "test_size": config["data"]["test_size"],
    }


def job_benchmarks(exclude):
    """An input function: the benchmark file of every job of every rule not in ``exclude``,
    computed from the rules' benchmark: directives once all rules are defined."""
    values = {"run_id": RUN_IDS}

    def files(wildcards):
        return [
            path
            for rule in workflow.rules
            if rule.benchmark and rule.name not in exclude
            for path in expand(
                strip_wildcard_constraints(str(rule.benchmark)),
                **{name: values[name] for name in rule.wildcard_names},
            )
        ]

    return files
