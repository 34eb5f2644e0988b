"""Shared test helpers: the local MNIST copy, running the workflow, and system-component checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
#: The four original MNIST IDX files beside the checkout (tests and CI only; users download).
SHARED_MNIST = Path(os.environ.get("HW5_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
#: The rules of problems 1-5 (one per problem).
PROBLEM_RULES = {
    f"problem_{name}"
    for name in ("backprop", "vanishing_gradients", "momentum", "receptive_field", "inception_cost")
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


#: The project's Triton kernel modules (hw5repro.<name>), each used through the module beside it
#: (its ``_kernels()``).
TRITON_KERNELS = {
    "eval_triton": "eval_kernels",
    "first_conv_triton": "first_conv",
    "train_epilogues_triton": "train_epilogues",
}


def _fresh_kernels(monkeypatch, interpret: bool):
    """The kernel modules defined anew, in Triton's interpreter or compiled (``triton.jit``
    decides when a kernel is defined), and forgotten after."""
    import importlib

    from hw5repro.eval_kernels import triton_available

    require_system(triton_available(), "Triton is not installed (Linux builds of PyTorch have it)")
    if interpret:
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    else:
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)

    package = importlib.import_module("hw5repro")

    def forget():  # (``from . import m`` takes the package's attribute m before sys.modules)
        for kernels, wrapper in TRITON_KERNELS.items():
            sys.modules.pop(f"hw5repro.{kernels}", None)
            vars(package).pop(kernels, None)
            importlib.import_module(f"hw5repro.{wrapper}")._kernels.cache_clear()

    forget()
    yield
    forget()


@pytest.fixture
def interpreted(monkeypatch):
    """The project's Triton kernels defined under TRITON_INTERPRET=1, so that they run on CPU
    tensors."""
    yield from _fresh_kernels(monkeypatch, interpret=True)


@pytest.fixture
def compiled(monkeypatch):
    """The project's Triton kernels defined for compiling (no interpreter)."""
    yield from _fresh_kernels(monkeypatch, interpret=False)


def count_calls(monkeypatch, module, *names: str) -> dict[str, int]:
    """Wrap ``module.<name>`` for each name so that its calls are counted: the counts, by name."""
    calls = dict.fromkeys(names, 0)
    for name in names:
        function = getattr(module, name)

        def counted(*args, name=name, function=function):
            calls[name] += 1
            return function(*args)

        monkeypatch.setattr(module, name, counted)
    return calls


def assert_same_metrics(expected: list[dict], got: list[dict], rel: float, abs: float) -> None:
    """Two trainings' per-epoch metrics agree within ``rel``/``abs``, timing columns aside."""
    assert len(expected) == len(got)
    for a, b in zip(expected, got, strict=True):
        for key in set(a) - {"epoch_seconds", "eval_seconds"}:
            assert a[key] == pytest.approx(b[key], rel=rel, abs=abs), key


def train_twice(n_train: int, **change):
    """A one-epoch toy training (batches of 8, channels_last: the layout the Triton kernels take;
    8 test images) with the default settings and with ``change``: ((metrics, info), (metrics,
    info))."""
    from dataclasses import replace

    from test_training import small_settings, toy_data

    from hw5repro.training import train

    data = toy_data(n=n_train, n_test=8)  # the interpreter runs each block of a kernel in Python
    settings = small_settings(epochs=1, batch_size=8, channels_last=True)
    plain, _, plain_info = train(data, settings, seed=0, progress=False)
    changed, _, info = train(data, replace(settings, **change), seed=0, progress=False)
    return (plain, plain_info), (changed, info)


def require_system(available: bool, reason: str) -> None:
    """Skip a test that needs a system component on a laptop, but fail it in CI, where every
    component is installed by .ci/run and nothing may skip."""
    if available:
        return
    if in_ci():
        pytest.fail(f"CI must provide this component: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not SHARED_MNIST.is_dir():
        pytest.fail(f"local MNIST copy not found at {SHARED_MNIST} (set HW5_MNIST_DIR)")
    return SHARED_MNIST


def preset_config(name: str = "smoke") -> dict:
    """The full configuration of a preset: its overlay merged over config/config.yaml key by key,
    as Snakemake merges ``--configfile config/<name>.yaml`` over the Snakefile's ``configfile:``."""
    from hw5repro.settings import merge

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    if name != "config":
        config = merge(config, yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text()))
    return config


def write_config(path: Path, preset: str = "smoke", **overrides) -> Path:
    """The full configuration of a preset with data.local_dir pointing at the local MNIST copy and
    nested ``overrides`` given as {"training": {"epochs": 2}}."""
    from hw5repro.settings import merge

    config = merge(preset_config(preset), {"data": {"local_dir": str(SHARED_MNIST)}})
    config = merge(config, overrides)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, configfile: Path, *args: str, check: bool = True, **kwargs):
    """Run the project's Snakefile with ``workdir`` as working directory."""
    cmd = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(configfile),
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-8000:]}"
        )
    return proc


def fresh_copy(dst: Path) -> Path:
    """The checkout's files as a fresh clone of it has them (tracked and new files that git does
    not ignore; symbolic links kept as links, e.g. ./slurm), without results/, .snakemake/ or
    resources/: a user's command then runs at the root of this copy, and its results do not
    land in the checkout the tests run from."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        src, target = REPO / name, dst / name
        if not (src.exists() or src.is_symlink()):
            continue  # deleted in the working tree, not committed yet
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)
    return dst


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One complete smoke workflow run, shared by the tests that only read its outputs."""
    workdir = tmp_path_factory.mktemp("smoke")
    config = write_config(workdir / "config.yaml")
    snakemake(workdir, config, "--cores", "2")
    return workdir


@contextmanager
def edited(path: Path):
    """Change ``path``'s content (a trailing newline; Snakemake 9 ignores a bare touch when the
    checksum is unchanged), then restore its bytes and modification time."""
    original, before = path.read_bytes(), path.stat()
    try:
        path.write_bytes(original + b"\n")
        yield path
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def planned_jobs(workdir: Path, configfile: Path, *args: str) -> dict[str, int]:
    """Jobs per rule that a dry run would execute (empty when there is nothing to do)."""
    proc = snakemake(workdir, configfile, "-n", "--cores", "1", *args)
    counts, in_stats = {}, False
    for line in proc.stdout.splitlines():
        if line.startswith("Job stats:"):
            in_stats = True
        elif in_stats:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
                counts[parts[0]] = int(parts[1])
            elif parts and parts[0] == "total":
                break
    return counts


def pytest_sessionfinish(session, exitstatus):
    """In CI nothing may skip: every system component is installed by .ci/run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if in_ci() and skipped:
        names = ", ".join(report.nodeid for report in skipped)
        reporter.write_line(
            f"CI: {len(skipped)} test(s) skipped, which CI forbids: {names}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
