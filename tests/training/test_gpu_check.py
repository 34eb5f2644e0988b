"""A GPU allocated to the job but unusable fails the job at once (training.device)."""

from __future__ import annotations

import pytest
import torch

from helpers import REPO, settings_config
from hw5repro.pipeline.codedeps import module_dependencies
from hw5repro.training.device import (
    GpuAllocationError,
    allocated_gpus,
    check_allocated_gpu,
    resolve_device,
)
from hw5repro.training.settings import Settings

#: Whether this machine's PyTorch has a usable GPU (then "unusable" is simulated below).
REAL_CUDA = torch.cuda.is_available()
SLURM_GPU_JOB = {"CUDA_VISIBLE_DEVICES": "0", "SLURM_GPUS": "1", "SLURM_JOB_ID": "17"}


@pytest.fixture
def no_usable_gpu(monkeypatch):
    """PyTorch without a usable GPU (as on this CPU machine; on a GPU machine, made so)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("CUDA_VISIBLE_DEVICES", "SLURM_GPUS", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_only_variables_that_name_gpus_count_as_an_allocation():
    assert allocated_gpus(SLURM_GPU_JOB) == {"CUDA_VISIBLE_DEVICES": "0", "SLURM_GPUS": "1"}
    assert allocated_gpus({"CUDA_VISIBLE_DEVICES": "", "SLURM_GPUS": " "}) == {}
    assert allocated_gpus({"CUDA_VISIBLE_DEVICES": "NoDevFiles", "SLURM_JOB_ID": "3"}) == {}


def test_an_allocated_gpu_that_pytorch_cannot_use_fails_naming_both(no_usable_gpu):
    with pytest.raises(GpuAllocationError) as error:
        check_allocated_gpu(SLURM_GPU_JOB)
    message = str(error.value)
    assert "allocated a GPU (CUDA_VISIBLE_DEVICES=0, SLURM_GPUS=1)" in message
    assert "torch.cuda.is_available() is False" in message
    assert f"torch.cuda.device_count() is {torch.cuda.device_count()}" in message
    assert f"torch.version.cuda is {torch.version.cuda}" in message
    assert "set training.device: cpu" in message
    if not REAL_CUDA:  # the driver's own words, from torch.cuda.init()
        assert "CUDA initialisation failed: " in message
        with pytest.raises(Exception) as init_error:
            torch.cuda.init()
        assert str(init_error.value).splitlines()[0] in message


def test_device_auto_fails_on_such_a_node_and_cpu_trains_there(no_usable_gpu):
    for name, value in SLURM_GPU_JOB.items():
        no_usable_gpu.setenv(name, value)
    with pytest.raises(GpuAllocationError, match="CUDA_VISIBLE_DEVICES=0"):
        resolve_device("auto")
    with pytest.raises(GpuAllocationError):
        Settings.from_config(settings_config(device="auto"))
    assert resolve_device("cpu") == torch.device("cpu")
    assert Settings.from_config(settings_config(device="cpu")).device == "cpu"


def test_without_an_allocation_auto_falls_back_to_the_cpu(no_usable_gpu):
    assert resolve_device("auto") == torch.device("cpu")


def test_the_check_is_part_of_the_training_jobs_code():
    """Editing the check reruns training: its module is a dependency of the training script."""
    package = REPO / "workflow" / "hw5repro"
    deps = module_dependencies(REPO / "workflow" / "scripts" / "train.py", package)
    assert package / "training" / "device.py" in deps
    assert package / "pipeline" / "__init__.py" in deps
