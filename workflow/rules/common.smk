# Configuration validation (once), the run grid and input functions shared by all steps.
import os
from pathlib import Path

from snakemake.utils import validate

from hw5repro.experiment import RUN_NAME_PATTERN, runs_from_config
from hw5repro.mnist import FILES as MNIST_FILES, check_local_dir

validate(config, schema="../../config/schema.yaml")
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


def code(*modules):
    """Package modules that a step depends on; editing one reruns the step and what follows."""
    return [str(REPO / "workflow" / "hw5repro" / f"{module}.py") for module in modules]


def template(*names):
    return [str(REPO / "report" / name) for name in names]


def training_settings():
    """Everything that changes a training result, passed as params so reruns see changes."""
    return {"model": dict(config["model"]), "training": dict(config["training"])}


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
