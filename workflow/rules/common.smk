# Configuration validation (once), the run grid and input functions shared by every rule.
from pathlib import Path

from snakemake.utils import validate

from hw5repro.experiment import Run, runs_from_config
from hw5repro.mnist import FILES as MNIST_FILES


validate(config, schema="../../config/schema.yaml")

REPO = Path(workflow.basedir)
RUNS = runs_from_config(config)
RUN_IDS = [run.name for run in RUNS]


wildcard_constraints:
    run_id=r"(labels|shuffled_pixels|random_pixels|gaussian)_r[0-9.]+_s[0-9]+",


def code(*modules):
    """Package modules a rule depends on: editing one reruns that rule and what follows."""
    return [str(REPO / "workflow" / "hw5repro" / f"{module}.py") for module in modules]


def template(*names):
    return [str(REPO / "report" / name) for name in names]


def training_settings():
    """Everything that changes a training result, passed as params so reruns see changes."""
    return {"model": dict(config["model"]), "training": dict(config["training"])}


def train_resources():
    res = config["resources"]["train"]
    extra = {"gpu_model": res["gpu_model"]} if res["gpu_model"] else {}
    return {"gpu": res["gpu"], "mem_mb": res["mem_mb"], "runtime": res["runtime"], **extra}


def run_outputs(name):
    return expand("results/runs/{run_id}/{name}", run_id=RUN_IDS, name=name)
