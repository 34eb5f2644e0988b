"""Fixtures and hooks; the shared helpers are in tests/helpers.py."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from helpers import (  # noqa: F401  (REPO: tests/benchmarks import it from here)
    MNIST_CACHE,
    REPO,
    SHARED_MNIST,
    TRITON_KERNELS,
    download_mnist,
    in_ci,
    require_system,
    snakemake,
    write_config,
)


def _fresh_kernels(monkeypatch, interpret: bool):
    """The kernel modules defined anew, in Triton's interpreter or compiled (``triton.jit``
    decides when a kernel is defined), and forgotten after."""
    from hw5repro.kernels.epilogues import triton_available

    require_system(triton_available(), "Triton is not installed (Linux builds of PyTorch have it)")
    if interpret:
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    else:
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)

    def forget():  # (``from . import m`` takes the package's attribute m before sys.modules)
        for kernels, wrapper in TRITON_KERNELS.items():
            parent, _, name = f"hw5repro.{kernels}".rpartition(".")
            sys.modules.pop(f"{parent}.{name}", None)
            vars(importlib.import_module(parent)).pop(name, None)
            importlib.import_module(f"hw5repro.{wrapper}")._kernels.cache_clear()

    forget()
    yield
    forget()


CUDA_TESTS = REPO / "tests" / "cuda"

if "PYTEST_XDIST_WORKER" in os.environ:
    # One thread per test process (and for the Snakemake runs it starts), set before PyTorch's
    # import: three processes of PyTorch's default two threads each on CI's 2 cores spin
    # against each other (tests ran up to 5 times slower).
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def interpreted(monkeypatch):
    """The project's Triton kernels defined under TRITON_INTERPRET=1, so that they run on CPU
    tensors."""
    yield from _fresh_kernels(monkeypatch, interpret=True)


@pytest.fixture
def compiled(monkeypatch):
    """The project's Triton kernels defined for compiling (no interpreter)."""
    yield from _fresh_kernels(monkeypatch, interpret=False)


def pytest_configure(config):
    """MNIST for the session, once, before any test (and before pytest-xdist's workers start):
    without $HW5_MNIST_DIR and a copy beside the checkout, the download cache is filled on first
    use; if that fails (offline), the session stops here with one message naming the remedy."""
    if hasattr(config, "workerinput") or SHARED_MNIST != MNIST_CACHE:
        return
    from hw5repro.data.mnist import FILES

    if all((MNIST_CACHE / f"{name}.gz").is_file() for name in FILES):
        return
    try:
        with FileLock(str(MNIST_CACHE.parent / "mnist.lock")):
            download_mnist(MNIST_CACHE)
    except Exception as err:  # offline, a mirror down, a corrupt file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        pytest.exit(
            f"MNIST could not be downloaded into {MNIST_CACHE} ({first}). Set HW5_MNIST_DIR to "
            f"a folder holding the four MNIST files ({', '.join(FILES)}; gzipped or raw), or "
            "run the tests once with network access: the download is kept for later runs.",
            returncode=1,
        )


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not SHARED_MNIST.is_dir():
        pytest.fail(f"MNIST not found at {SHARED_MNIST} (set HW5_MNIST_DIR)")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One complete smoke workflow run, shared by the tests that only read its outputs: made
    once per test session, also under pytest-xdist (the first worker that needs it runs it in
    the session's shared temporary folder; the others wait for it, then read it)."""
    shared = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        shared = shared.parent  # the folder above each worker's own
    workdir, done = shared / "smoke", shared / "smoke.done"
    with FileLock(str(shared / "smoke.lock")):
        if not done.exists():
            workdir.mkdir(exist_ok=True)
            config = write_config(workdir / "config.yaml")
            snakemake(workdir, config, "--cores", "2")
            done.touch()
    return workdir


#: Test processes of a plain ``pytest`` (pytest-xdist): one of them runs the SLURM tests, which
#: mostly wait on SLURM's clock, while the others compute on CI's 2 cores.
WORKERS = 3
#: Test files that go first (the scheduler hands out files in this order): the longest, whose
#: time is mostly waiting, before those that compute.
FIRST = ("tests/system/test_slurm.py", "tests/workflow/test_reruns.py")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """``pytest`` runs the suite in WORKERS processes where pytest-xdist is installed and no
    ``-n`` was given; ``pytest -n 0`` runs in one process. ``--dist loadfile``: the tests of a
    file run in one process, in order (the SLURM tests share one cluster and module fixtures;
    pytest-xdist 3.8's ``xdist_group`` marks do not group on pytest 9, whose node ids it cannot
    suffix). tests/cuda alone (benchmarks/gpu_check.sh, on a GPU machine that may lack
    pytest-xdist) runs in one process. (Here rather than in pyproject's addopts, where ``-n`` is
    an error without pytest-xdist.)"""
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("xdist"):
        return  # (an xdist worker: it calls this hook too)
    if config.option.numprocesses is not None:
        return
    args = [str(arg) for arg in config.args]
    if args and all(Path(arg.split("::")[0]).resolve().is_relative_to(CUDA_TESTS) for arg in args):
        return
    config.option.numprocesses = WORKERS
    if config.option.dist == "no":
        config.option.dist = "loadfile"


def pytest_collection_modifyitems(config, items):
    """The files of FIRST first, the rest in the order collected (the same in every process)."""
    first = {name: i for i, name in enumerate(FIRST)}

    def rank(item):
        return first.get(item.nodeid.split("::")[0], len(FIRST))

    items.sort(key=rank)  # (stable: each file's tests keep their order)


def pytest_sessionfinish(session, exitstatus):
    """In CI nothing may skip: every system component is installed by .ci/run. CUDA tests
    (marked ``cuda``) are exempt: CI has no GPU; tests/cuda runs on a GPU machine
    (benchmarks/gpu_check.sh). Under pytest-xdist the workers report to the controller, which
    checks the session's skips."""
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller sees every report
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    skipped = [report for report in skipped if "cuda" not in getattr(report, "keywords", {})]
    if in_ci() and skipped:
        names = ", ".join(report.nodeid for report in skipped)
        reporter.write_line(
            f"CI: {len(skipped)} test(s) skipped, which CI forbids: {names}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
