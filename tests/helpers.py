"""Shared test helpers (one module; no test file imports another): the local MNIST copy, running
the workflow, system-component checks, and small settings and data for training tests."""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
#: The local MNIST copy beside the checkout (this project's machines and CI).
BESIDE_MNIST = REPO.parent / "shared" / "data" / "mnist"
#: Where the tests keep MNIST when they download it (once, reused across runs and checkouts).
MNIST_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hw5repro/mnist"
#: The four MNIST IDX files the tests read: $HW5_MNIST_DIR if set, else the copy beside the
#: checkout if there is one, else the download cache (filled at the session's start:
#: :func:`download_mnist`). Tests and CI only; users' workflows download.
SHARED_MNIST = Path(
    os.environ.get("HW5_MNIST_DIR") or (BESIDE_MNIST if BESIDE_MNIST.is_dir() else MNIST_CACHE)
)
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


#: One lock per checkout, shared by every test process (pytest-xdist's workers, other sessions
#: on this checkout): a test that edits the checkout's files (``edited``) holds it exclusively,
#: every Snakemake run and copy of the checkout (``snakemake``, ``planned_jobs``,
#: ``fresh_copy``) holds it shared, so that no edit meets another test's workflow run.
CHECKOUT_LOCK = Path(tempfile.gettempdir()) / (
    "hw5repro-checkout-" + hashlib.sha1(str(REPO).encode()).hexdigest()[:12] + ".lock"
)
_held: list[int] = []  # this process's lock mode while it holds the lock (re-entrant)


@contextmanager
def checkout_lock(exclusive: bool = False):
    """Hold :data:`CHECKOUT_LOCK` (shared, or exclusive); re-entrant within a process (a test
    that holds it exclusively runs Snakemake under it)."""
    if _held:
        if exclusive and _held[-1] != fcntl.LOCK_EX:
            raise RuntimeError("cannot take the checkout lock exclusively inside a shared hold")
        _held.append(_held[-1])
        try:
            yield
        finally:
            _held.pop()
        return
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    with open(CHECKOUT_LOCK, "a") as f:
        fcntl.flock(f, mode)
        _held.append(mode)
        try:
            yield
        finally:
            _held.pop()
            fcntl.flock(f, fcntl.LOCK_UN)


def download_mnist(cache: Path = MNIST_CACHE) -> None:
    """The four MNIST files into ``cache`` as .gz files (the local copy's form), downloaded and
    verified by the project's own fetch (torchvision's mirrors). $HW5_MNIST_MIRROR, a URL only
    the tests read, replaces the mirrors (a local server: a fresh clone checked without the
    network); its .gz files may be compressed anew, so torchvision's MD5 of the original archives
    is not asked there, while fetch's SHA-256 of the decompressed files still is."""
    import gzip

    from hw5repro.data import mnist

    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        mirror = os.environ.get("HW5_MNIST_MIRROR")
        if mirror:
            from torchvision.datasets import MNIST

            saved = MNIST.mirrors, MNIST.resources
            MNIST.mirrors = [mirror if mirror.endswith("/") else mirror + "/"]
            MNIST.resources = [(name, None) for name, _ in MNIST.resources]
            try:
                raw = mnist.fetch(Path(tmp) / "raw")
            finally:
                MNIST.mirrors, MNIST.resources = saved
        else:
            raw = mnist.fetch(Path(tmp) / "raw")
        for path in raw:  # each .gz in place only when whole: a reader never sees half of one
            part = Path(tmp) / f"{path.name}.gz"
            with open(path, "rb") as src, gzip.open(part, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(part, cache / part.name)


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
    with checkout_lock():
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
    with checkout_lock():
        return _copy_checkout(dst)


def _copy_checkout(dst: Path) -> Path:
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
    checksum is unchanged), then restore its bytes and modification time. Both writes replace
    the file at once (a temporary file renamed over it): a test or job that imports the module
    meanwhile reads a whole file, never a truncated one."""
    with checkout_lock(exclusive=True):
        yield from _edited(path)


def _edited(path: Path):
    original, before = path.read_bytes(), path.stat()

    def replace(content: bytes, times: tuple[int, int] | None = None) -> None:
        tmp = path.with_name(f".{path.name}.edited-{os.getpid()}")
        tmp.write_bytes(content)
        os.chmod(tmp, before.st_mode)
        if times is not None:
            os.utime(tmp, ns=times)
        os.replace(tmp, path)

    try:
        replace(original + b"\n")
        yield path
    finally:
        replace(original, (before.st_atime_ns, before.st_mtime_ns))


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


# --- the report, rendered from fixture results ---------------------------------------------

#: A label that is markup in HTML and LaTeX alike.
NASTY = "50%_noise & more"


NASTY = "50%_noise & more"


def stats(train_acc, test_acc, fit, runs=2, fitted=2, seconds=10.0):
    return {
        "runs": runs,
        "fitted_runs": fitted,
        "train_loss_mean": 0.1,
        "train_acc_mean": train_acc,
        "test_loss_mean": 2.0,
        "test_acc_mean": test_acc,
        "test_error_mean": 1 - test_acc,
        "train_seconds_mean": seconds,
        "epochs_to_fit_mean": fit,
    }


def facts(random_train_acc=1.0, random_fit=40.0):
    by_ratio = [
        {"ratio": 0.0, **stats(1.0, 0.97, 5.0, seconds=100.0)},
        {"ratio": 0.5, **stats(1.0, 0.60, 20.0, seconds=104.0)},
        {
            "ratio": 1.0,
            **stats(
                random_train_acc,
                0.10,
                random_fit,
                fitted=0 if random_fit is None else 2,
                seconds=101.0,
            ),
        },
    ]
    return {
        "fit_threshold": 0.99,
        "epochs": 150,
        "train_size": 6000,
        "test_size": 10000,
        "width": 1.0,
        "parameters": 1234567,
        "label_ratios": [0.0, 0.5, 1.0],
        "input_corruptions": ["shuffled_pixels", NASTY],
        "seeds": [0, 1],
        "random_labels": by_ratio[2] | {},
        "true_labels": by_ratio[0] | {},
        "by_ratio": by_ratio,
        "by_corruption": [
            {"corruption": "true_labels", "label": "true labels", **stats(1.0, 0.97, 5.0)},
            {"corruption": "shuffled_pixels", "label": "shuffled pixels", **stats(1.0, 0.5, 30.0)},
            {"corruption": "gaussian", "label": NASTY, **stats(1.0, 0.1, None, fitted=0)},
        ],
        "device": ["cuda"],
        "device_name": ["NVIDIA H100"],
        "precision": ["bf16"],
        "step": ["CUDA graph"],
    }


def write_results(root: Path, memorisation: dict | None = None) -> Path:
    """Fixture versions of the workflow's problem-6 outputs (tables, JSON, PNG + PDF figures)."""
    import pandas as pd

    from hw5repro.plotting import plt
    from hw5repro.reporting.figures import FIGURES

    tables = root / "results" / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    (tables / "memorisation.json").write_text(json.dumps(memorisation or facts()))
    rows = [
        {
            "run_id": f"labels_r{r}_s{s}",
            "corruption": "labels",
            "ratio": r,
            "seed": s,
            "kind": NASTY,
            "epochs": 150,
            "train_loss": 0.01,
            "train_acc": 1.0,
            "test_loss": 2.0,
            "test_acc": 0.9 - r * 0.8,
            "test_error": 0.1 + r * 0.8,
            "train_seconds": 1234.5,
            "epochs_to_fit": float("nan") if r == 1.0 else 10,
        }
        for r in (0.0, 0.5, 1.0)
        for s in (0, 1)
    ]
    final = pd.DataFrame(rows)
    final.to_csv(tables / "final_metrics.csv", index=False)
    summary = (
        final.groupby(["corruption", "ratio"])
        .agg(
            n_seeds=("seed", "size"),
            kind=("kind", "first"),
            train_acc_mean=("train_acc", "mean"),
            train_acc_sd=("train_acc", "std"),
            test_acc_mean=("test_acc", "mean"),
            test_acc_sd=("test_acc", "std"),
            test_error_mean=("test_error", "mean"),
            train_seconds_mean=("train_seconds", "mean"),
            epochs_to_fit_mean=("epochs_to_fit", "mean"),
            epochs_to_fit_sd=("epochs_to_fit", "std"),
            fitted_runs=("epochs_to_fit", "count"),
        )
        .reset_index()
    )
    summary["slowdown"] = summary["epochs_to_fit_mean"] / 10
    summary.to_csv(tables / "summary.csv", index=False)
    figures = root / "results" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for name in FIGURES:
        fig, ax = plt.subplots(figsize=(4, 2.5))
        ax.plot([0, 1, 2], [3, 1, 2])
        ax.set_title(name)
        fig.savefig(figures / f"{name}.png", dpi=60)
        fig.savefig(figures / f"{name}.pdf")
        plt.close(fig)
    return root


def provenance_facts(root: Path) -> dict:
    from hw5repro.reporting import provenance as prov

    run = root / "results" / "runs" / "labels_r0_s0"
    run.mkdir(parents=True, exist_ok=True)
    (run / "run.json").write_text(
        json.dumps(
            {
                "device": "cuda",
                "device_name": NASTY,
                "precision": "bf16",
                "cuda_graphs": True,
                "torch": "2.11.0+cu130",
                "cuda": "13.0",
                "cudnn": 91002,
                "triton": "3.5.0",
                "parameters": 1234567,
                "wall_seconds": 130.0,
                "train_seconds": 120.0,
                "images_per_second": 5000.0,
            }
        )
    )
    root_bench = root / "results" / "benchmarks"
    bench = root_bench / "train"
    bench.mkdir(parents=True, exist_ok=True)
    header = "s\th:m:s\tmax_rss\n"
    (bench / "labels_r0_s0.tsv").write_text(header + "131.5\t0:02:11\t900\n")
    (bench / "labels_r0.5_s0.tsv").write_text(header + "128.5\t0:02:08\t900\n")
    (root_bench / "fetch_mnist.tsv").write_text(header + "2.25\t0:00:02\t50\n")
    # a stale benchmark of a run no longer in the configuration: not an input, not counted
    (bench / "labels_r0.9_s0.tsv").write_text(header + "1000.0\t0:16:40\t900\n")
    files = [bench / f"labels_r{r}_s0.tsv" for r in ("0", "0.5")] + [root_bench / "fetch_mnist.tsv"]
    return prov.collect(config(), prov.git_state(root), [run / "run.json"], files, root_bench)


def config(pdf: bool = False, title: str = "HW5 " + NASTY) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["report"] = {"title": title, "pdf": pdf}
    return cfg


def problem6_report_dir(tmp: Path) -> Path:
    """report/ with only the problem-6 sections of the real sections.yaml and their caption
    files, one caption carrying the hostile label."""
    report_dir = tmp / "report"
    report_dir.mkdir()
    for name in ("index.html.j2", "report.tex.j2", "style.css"):
        (report_dir / name).write_text((REPO / "report" / name).read_text())
    (report_dir / "sections").mkdir()
    (report_dir / "captions").mkdir()
    sections = [
        s
        for s in yaml.safe_load((REPO / "report" / "sections.yaml").read_text())
        if s["text"].startswith(("sections/06", "sections/07"))
    ]
    for s in sections:
        (report_dir / s["text"]).write_text((REPO / "report" / s["text"]).read_text())
        for item in s.get("tables", []) + s.get("figures", []):
            caption = item["caption"]
            (report_dir / caption).write_text((REPO / "report" / caption).read_text())
    (report_dir / sections[0]["figures"][0]["caption"]).write_text(
        f"Loss for {NASTY} with :math:`r`\n"
    )
    (report_dir / "sections.yaml").write_text(yaml.safe_dump(sections, sort_keys=False))
    return report_dir


def render_problem6(tmp_path: Path, memorisation: dict | None = None, pdf: bool = False):
    """Render the problem-6 sections from fixture results; returns (workdir, report folder)."""
    from hw5repro.reporting.render import render_report

    root = write_results(tmp_path / "work", memorisation)
    report_dir = problem6_report_dir(tmp_path)
    out = root / "results" / "report"
    old = os.getcwd()
    os.chdir(root)
    try:
        render_report(
            report_dir / "sections.yaml",
            config(pdf=pdf),
            provenance_facts(root),
            out / "index.html",
            out / "report.tex",
            report_dir=report_dir,
        )
    finally:
        os.chdir(old)
    return root, out
