"""Shared test helpers (one module; no test file imports another): the local MNIST copy, running
the workflow, system-component checks, and small settings and data for training tests."""

from __future__ import annotations

import math
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
#: The project's Triton kernel modules (hw5repro.<name>), each used through the module named
#: beside it (its ``_kernels()``).
TRITON_KERNELS = {"kernels.triton_kernels": "kernels.epilogues"}
#: Metric columns that are times (they differ from one run to the next).
TIMING = {"epoch_seconds", "eval_seconds"}
#: Which section of a configuration each setting of :func:`small_settings` belongs to.
MODEL_KEYS = {"width", "dropout", "init"}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_system(available: bool, reason: str) -> None:
    """Skip a test that needs a system component on a laptop, but fail it in CI, where every
    component is installed by .ci/run and nothing may skip."""
    if available:
        return
    if in_ci():
        pytest.fail(f"CI must provide this component: {reason}")
    pytest.skip(reason)


# --- training ------------------------------------------------------------------------------


def toy_data(n=256, n_test=128, seed=0, mislabelled_fraction=0.5):
    """Random 28x28 images and labels (a RunData), half of the training labels "mislabelled"."""
    import torch

    from hw5repro.data.rundata import RunData

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    mislabelled = torch.zeros(n, dtype=torch.bool)
    mislabelled[: int(n * mislabelled_fraction)] = True
    tx = torch.rand(n_test, 1, 28, 28, generator=g)
    ty = torch.randint(0, 10, (n_test,), generator=g)
    return RunData(x, y, mislabelled, tx, ty)


def settings_config(**kw) -> dict:
    """The schema's defaults with a small CPU run's settings and ``kw`` (flat names: ``width``,
    ``dropout`` and ``init`` go to ``model``, the rest to ``training``)."""
    from hw5repro.pipeline.config import defaults, load_schema, merge

    base = dict(
        epochs=4,
        batch_size=32,
        lr=0.05,
        width=0.125,
        dropout=0.5,
        device="cpu",
        precision="fp32",
        channels_last=False,
        eval_batch_size=128,
        checkpoint_every=1,
    )
    overrides: dict = {"model": {}, "training": {}}
    for key, value in {**base, **kw}.items():
        overrides["model" if key in MODEL_KEYS else "training"][key] = value
    return merge(defaults(load_schema()), overrides)


def small_settings(**kw):
    """Resolved Settings of a small CPU run (1/8 width, batches of 32, 4 epochs) with ``kw``."""
    from hw5repro.training.settings import Settings

    return Settings.from_config(settings_config(**kw))


def strip_timing(rows: list[dict]) -> list[dict]:
    """Metric rows without their timing columns."""
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def assert_same_metrics(expected: list[dict], got: list[dict], rel: float, abs: float) -> None:
    """Two trainings' per-epoch metrics agree within ``rel``/``abs``, timing columns aside (NaN
    equals NaN)."""
    assert len(expected) == len(got)
    for a, b in zip(expected, got, strict=True):
        for key in set(a) - TIMING:
            if isinstance(a[key], float) and math.isnan(a[key]):
                assert math.isnan(b[key]), key
                continue
            assert a[key] == pytest.approx(b[key], rel=rel, abs=abs), key


def train_twice(n_train: int, **change):
    """A one-epoch toy training (batches of 8, channels_last: the layout the Triton kernels take;
    8 test images) with the default settings and with ``change``: ((metrics, info), (metrics,
    info))."""
    from dataclasses import replace

    from hw5repro.training.loop import train

    data = toy_data(n=n_train, n_test=8)  # the interpreter runs each block of a kernel in Python
    settings = small_settings(epochs=1, batch_size=8, channels_last=True)
    plain, _, plain_info = train(data, settings, seed=0, progress=False)
    changed, _, info = train(data, replace(settings, **change), seed=0, progress=False)
    return (plain, plain_info), (changed, info)


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


def write_idx(path: Path, array) -> None:
    """``array`` (uint8) as an IDX file, MNIST's format."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.tobytes())


def raw_mnist(folder: Path, labels_seed: int = 0) -> Path:
    """A tiny MNIST in IDX files under ``folder``/raw (120 training and 64 test images)."""
    import torch

    raw = folder / "raw"
    raw.mkdir(exist_ok=True)
    g = torch.Generator().manual_seed(0)
    images = {
        n: torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g) for n in (120, 64)
    }
    labels = torch.Generator().manual_seed(labels_seed)
    for prefix, n in (("train", 120), ("t10k", 64)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images[n].numpy())
        y = torch.randint(0, 10, (n,), dtype=torch.uint8, generator=labels)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y.numpy())
    return raw


def job_config(**training) -> dict:
    """A full configuration (the schema's defaults) for a small training job on the CPU."""
    from hw5repro.pipeline.config import defaults, load_schema, merge

    return merge(
        defaults(load_schema()),
        {
            "model": {"width": 0.125, "dropout": 0.5, "init": "kaiming"},
            "training": {
                "epochs": 2,
                "batch_size": 32,
                "lr": 0.05,
                "device": "cpu",
                "precision": "fp32",
                "eval_batch_size": 64,
                "checkpoint_every": 1,
                **training,
            },
        },
    )


# --- the workflow --------------------------------------------------------------------------


def preset_config(name: str = "smoke") -> dict:
    """The full configuration of a preset: its overlay merged over config/config.yaml key by key,
    as Snakemake merges ``--configfile config/<name>.yaml`` over the Snakefile's ``configfile:``."""
    from hw5repro.pipeline.config import merge

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    if name != "config":
        config = merge(config, yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text()))
    return config


def write_config(path: Path, preset: str = "smoke", **overrides) -> Path:
    """The full configuration of a preset with data.local_dir pointing at the local MNIST copy and
    nested ``overrides`` given as {"training": {"epochs": 2}}."""
    from hw5repro.pipeline.config import merge

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
