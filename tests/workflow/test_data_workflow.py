"""data.local_dir through the workflow: the data's identity is its checksums, not its folder, and
a missing or incomplete folder fails at validation, before any job (issue 11, items 5 and 8)."""

import shutil

import pytest

from helpers import planned_jobs, snakemake, write_config
from hw5repro.data import mnist

pytestmark = pytest.mark.slow

RAW = "resources/mnist/train-images-idx3-ubyte"


@pytest.fixture(scope="module")
def data_run(tmp_path_factory, mnist_dir):
    """The data step (fetch from the local MNIST copy) done once."""
    workdir = tmp_path_factory.mktemp("data-run")
    config = write_config(workdir / "config.yaml")
    snakemake(workdir, config, "--cores", "1", RAW)
    return workdir


def _checksums(workdir):
    raw = workdir / "resources" / "mnist"
    return {name: mnist.sha256(raw / name) for name in mnist.FILES}


def test_moved_local_dir_reruns_nothing(data_run, mnist_dir, tmp_path):
    copy = tmp_path / "moved" / "mnist"
    shutil.copytree(mnist_dir, copy)
    config = write_config(tmp_path / "moved.yaml", data={"local_dir": str(copy)})
    assert planned_jobs(data_run, config, RAW) == {}
    # Raw (decompressed) copies of the same files are the same data, too.
    raw_copy = tmp_path / "raw"
    shutil.copytree(data_run / "resources" / "mnist", raw_copy)
    config = write_config(tmp_path / "raw.yaml", data={"local_dir": str(raw_copy)})
    assert planned_jobs(data_run, config, RAW) == {}


@pytest.mark.parametrize("problem", ["missing_file", "missing_folder"])
def test_bad_local_dir_fails_before_any_job(data_run, mnist_dir, tmp_path, problem):
    local = tmp_path / "mnist"
    if problem == "missing_file":
        shutil.copytree(mnist_dir, local)
        (local / "train-labels-idx1-ubyte.gz").unlink()
        expected = (
            f"data.local_dir={local} is incomplete: train-labels-idx1-ubyte "
            f"(or train-labels-idx1-ubyte.gz) not found in {local}"
        )
    else:
        expected = f"data.local_dir={local}: no such folder"
    config = write_config(tmp_path / "bad.yaml", data={"local_dir": str(local)})
    before = _checksums(data_run)
    # Even a forced rerun of the fetch step never starts: validation fails first.
    proc = snakemake(
        data_run, config, "--cores", "1", "--forcerun", "fetch_mnist", RAW, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    assert "DataError" in output and expected in output, output[-3000:]
    assert "Building DAG of jobs" not in output and "rule fetch_mnist" not in output
    # resources/mnist is untouched.
    assert _checksums(data_run) == before == mnist.SHA256


def test_the_critical_path_goes_first(tmp_path):
    """With fewer cores than ready jobs, the data rule and training (the longest chain: every
    table, figure and the report wait for it) start before problems 1-5, which are ready from
    the start (rule priorities). On one core: the whole chain, then the problem."""
    config = write_config(
        tmp_path / "config.yaml",
        data={"train_size": 64, "test_size": 64},
        experiment={"label_ratios": [0.5], "input_corruptions": [], "seeds": [0]},
        training={"epochs": 1},
    )
    targets = ["results/runs/labels_r0.5_s0/metrics.csv", "results/problems/backprop/results.json"]
    proc = snakemake(tmp_path, config, "--cores", "1", *targets)
    started = [
        line.split()[-1].rstrip(":")
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.startswith(("rule ", "localrule "))
    ]
    assert started == ["fetch_mnist", "train", "problem_backprop"], started
