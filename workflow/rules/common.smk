# Configuration validation (once), the run grid and input functions shared by all steps.
import os
import sys
from pathlib import Path

# Parse with the hw5repro package of this checkout, as its jobs run with (not another installed copy).
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from snakemake.io import strip_wildcard_constraints
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from hw5repro.codedeps import module_dependencies
from hw5repro.experiment import (
    JOB_NAME_PATTERN,
    RUN_NAME_PATTERN,
    runs_from_config,
    train_jobs,
)
from hw5repro.mnist import FILES as MNIST_FILES, check_local_dir
from hw5repro.pipeline.command_line import CommandLineError, check_configfiles
from hw5repro.pipeline.reruns import MANIFEST as MNIST_MANIFEST
from hw5repro.pipeline.config_check import config_error, full_errors_wanted
from hw5repro.settings import load_schema, result_config, training_params

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
# Training jobs: one per run, or groups of training.runs_per_job runs fused in one process.
RUNS_PER_JOB = config["training"]["runs_per_job"]
TRAIN_JOBS = {job.name: job for job in train_jobs(RUNS, RUNS_PER_JOB)}
JOB_OF_RUN = {run: job.name for job in TRAIN_JOBS.values() for run in job.run_names}


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
    transitively. Editing one reruns the step and what follows (compared by content, not by
    time: hw5repro.pipeline.reruns)."""
    start = REPO / "workflow" / "scripts" / script
    modules = module_dependencies(start, REPO / "workflow" / "hw5repro")
    return sorted(repo_files([start, *modules]))


def template(*names):
    return repo_files(REPO / "report" / name for name in names)


def job_settings(wildcards):
    """Everything that changes the job's training results (hw5repro.settings splits result from
    operational keys, and leaves out what cannot act on a job of its runs: group_form for one
    run), passed as params so that reruns follow exactly these."""
    return training_params(config, job_runs=len(job_runs(wildcards)))


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


RUN_FILES = {"metrics": "metrics.csv", "model": "model.pt", "info": "run.json"}


def run_files(run_dir):
    """A run's outputs in ``run_dir``, by name (what every later rule reads, from results/runs)."""
    return {key: f"{run_dir}/{name}" for key, name in RUN_FILES.items()}


def train_outputs():
    """Rule train's outputs: one run's files in results/runs/{job}, or for a fused group the
    folder results/groups/{job}, holding a folder per run that rule run_files links into
    results/runs/{run} (the same files, so nothing after training knows how runs were grouped).
    """
    if RUNS_PER_JOB == 1:
        return run_files("results/runs/{job}")
    return {"group": directory("results/groups/{job}")}


def job_runs(wildcards):
    return TRAIN_JOBS[wildcards.job].run_names


def data_params():
    """What a training job draws its data with (hw5repro.training.train_job): the subset's seed
    and sizes. Each run's corruption follows from its name."""
    return {
        "seed": config["seed"],
        "train_size": config["data"]["train_size"],
        "test_size": config["data"]["test_size"],
    }


def job_run_files(wildcards):
    """Where the job writes each of its runs' files (see train_outputs)."""
    home = "results/runs" if RUNS_PER_JOB == 1 else f"results/groups/{wildcards.job}"
    return [run_files(f"{home}/{run}") for run in job_runs(wildcards)]


def job_checkpoints(wildcards):
    return expand("results/runs/{run}/checkpoint.pt", run=job_runs(wildcards))


def job_run_logs(wildcards):
    """Each run's own log across all its jobs (hw5repro.pipeline.run_log), never removed."""
    return expand("results/runs/{run}/train.log", run=job_runs(wildcards))


def job_attempts(wildcards):
    """The job's log history across attempts (hw5repro.logs), outside its outputs."""
    if RUNS_PER_JOB == 1:
        return f"results/runs/{wildcards.job}/attempts.log"
    return f"results/groups/{wildcards.job}.attempts.log"


def group_of_run(wildcards):
    return f"results/groups/{JOB_OF_RUN[wildcards.run_id]}"


def job_benchmarks(exclude):
    """An input function: the benchmark file of every job of every rule not in ``exclude``,
    computed from the rules' benchmark: directives once all rules are defined."""
    values = {"run_id": RUN_IDS, "job": list(TRAIN_JOBS)}

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
