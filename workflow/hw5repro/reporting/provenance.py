"""Provenance of a report: configuration, git state, package versions, devices, job wall times."""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

import pandas as pd
import yaml

#: Distributions whose versions the report states (missing ones are reported as null).
PACKAGES = [
    "snakemake",
    "torch",
    "torchvision",
    "numpy",
    "pandas",
    "matplotlib",
    "seaborn",
    "jinja2",
    "latex2mathml",
    "pyyaml",
    "hw5repro",
]
#: Keys of results/runs/<run_id>/run.json shown per run.
RUN_KEYS = [
    "run_id",
    "job",
    "device",
    "device_name",
    "precision",
    "cuda_graphs",
    "deterministic",
    "conv_epilogue",
    "cpu_threads",
    "torch",
    "cuda",
    "cudnn",
    "triton",
    "parameters",
    "wall_seconds",
    "train_seconds",
    "images_per_second",
]


def _git(repo: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state(repo: str | Path) -> dict:
    """Commit of ``repo`` and whether its tree differs from it, or a note why there is none."""
    repo = Path(repo)
    commit = _git(repo, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "note": "not a git repository (or git missing)"}
    status = _git(repo, "status", "--porcelain")  # untracked files count: they change results too
    return {"commit": commit, "dirty": None if status is None else bool(status), "note": None}


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_infos(paths: Sequence[str | Path]) -> list[dict]:
    """The device facts of each training run (run.json), sorted by run id."""
    rows = []
    for path in paths:
        info = json.loads(Path(path).read_text())
        info.setdefault("run_id", Path(path).parent.name)
        rows.append({key: info.get(key) for key in RUN_KEYS})
    return sorted(rows, key=lambda r: str(r["run_id"]))


def benchmarks(paths: Sequence[str | Path], root: str | Path) -> list[dict]:
    """Wall time (column ``s``) of the jobs whose Snakemake benchmark files are ``paths``; a job's
    rule is its first path component below ``root`` (the stem of a top-level file)."""
    root = Path(root)
    jobs = []
    for path in sorted(Path(p) for p in paths):
        frame = pd.read_csv(path, sep="\t")
        if "s" not in frame.columns or frame.empty:
            continue
        rel = path.relative_to(root)
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        jobs.append(
            {"rule": rule, "job": rel.with_suffix("").as_posix(), "s": float(frame["s"].iloc[0])}
        )
    return jobs


def per_rule(jobs: Sequence[dict]) -> list[dict]:
    """Jobs, total and maximum wall seconds per rule."""
    if not jobs:
        return []
    frame = pd.DataFrame(jobs).groupby("rule", sort=True)["s"].agg(["count", "sum", "max"])
    return [
        {
            "rule": rule,
            "jobs": int(row["count"]),
            "total_s": float(row["sum"]),
            "max_s": float(row["max"]),
        }
        for rule, row in frame.iterrows()
    ]


def software_line(run: dict) -> str:
    """'torch 2.11.0, CUDA 13.0, cuDNN 91002, Triton 3.5.0' from a run's record (what it has)."""
    names = {"torch": "torch", "cuda": "CUDA", "cudnn": "cuDNN", "triton": "Triton"}
    return ", ".join(f"{name} {run[key]}" for key, name in names.items() if run.get(key))


def devices(runs: Sequence[dict]) -> list[dict]:
    """Distinct (device, device name, precision, training step, software) and their run counts."""
    seen: dict[tuple, int] = {}
    for run in runs:
        step = "CUDA graph" if run.get("cuda_graphs") else "eager"
        if run.get("conv_epilogue") == "triton":
            step += ", bias, ReLU and max-pool as Triton kernels"
        if run.get("deterministic"):
            step += ", deterministic algorithms"
        if run.get("cpu_threads"):  # on a CPU the count is part of the result's rounding
            threads = run["cpu_threads"]
            step += f", {threads} CPU thread" + ("s" if threads > 1 else "")
        key = (run["device"], run["device_name"], run["precision"], step, software_line(run))
        seen[key] = seen.get(key, 0) + 1
    return [
        {"device": d, "device_name": n, "precision": p, "step": s, "software": v, "runs": k}
        for (d, n, p, s, v), k in seen.items()
    ]


def collect(
    config: dict,
    git: dict,
    run_json: Sequence[str | Path],
    benchmark_files: Sequence[str | Path],
    benchmark_root: str | Path,
    now: dt.datetime | None = None,
) -> dict:
    """Everything the report's provenance section states; ``git`` from :func:`git_state`,
    ``config`` the result settings (:func:`hw5repro.pipeline.config.result_config`)."""
    runs = run_infos(run_json)
    jobs = benchmarks(benchmark_files, benchmark_root)
    now = now or dt.datetime.now(dt.timezone.utc)
    return {
        "date": now.replace(microsecond=0).isoformat(),
        "git": dict(git),
        "config": config,
        "config_yaml": yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
        "packages": package_versions(),
        "platform": platform.platform(),
        "devices": devices(runs),
        "runs": runs,
        "jobs": jobs,
        "rules": per_rule(jobs),
        "total_job_seconds": float(sum(job["s"] for job in jobs)),
    }


def provenance_job(config, git, run_json, benchmark_files, benchmark_root, output) -> None:
    """The Snakemake job: write results/report/provenance.json."""
    plain = json.loads(json.dumps(dict(config), default=str))  # Snakemake containers -> dicts
    facts = collect(plain, dict(git), list(run_json), list(benchmark_files), benchmark_root)
    Path(output).write_text(json.dumps(facts, indent=2, default=str))
