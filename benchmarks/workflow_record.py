"""Record of one timed workflow run (for benchmarks/gpu_check.sh): wall time from `snakemake` to
the finished report, and what the run's own files say about where the time went.

    python benchmarks/workflow_record.py --workdir . --wall 142.3 --command "snakemake --cores 8" \
        --preset config/config.yaml --out benchmarks/results/gpu/workflow.json

Reads results/benchmarks/**/*.tsv (Snakemake's per-job wall times), results/runs/*/run.json
(device, images/s, train and eval seconds) and results/runs/*/metrics.csv.

A run stopped at its time limit gets a record too, with ``--partial``: ``"finished": false``, the
epochs every run had reached (from the training logs, one line per run and epoch) and the wall
time that the whole run would take at that pace (``--epochs``, ``--runs``: what was asked for);
``--logged-epochs CSV`` also writes every epoch the logs hold (run, epoch, train loss and
accuracy, test accuracy), the curves of a run that did not finish.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd


def job_seconds(workdir: Path) -> dict[str, float]:
    """Wall seconds of every job, keyed by its benchmark file's path under results/benchmarks."""
    root = workdir / "results" / "benchmarks"
    return {
        str(path.relative_to(root).with_suffix("")): float(pd.read_csv(path, sep="\t")["s"].iloc[0])
        for path in sorted(root.rglob("*.tsv"))
    }


def run_summaries(workdir: Path) -> dict[str, dict]:
    runs = {}
    for info_path in sorted((workdir / "results" / "runs").glob("*/run.json")):
        info = json.loads(info_path.read_text())
        metrics = pd.read_csv(info_path.with_name("metrics.csv"))
        runs[info["run_id"]] = {
            key: info.get(key)
            for key in (
                "device_name",
                "precision",
                "channels_last",
                "cuda_graphs",
                "deterministic",
                "conv_epilogue",
                "cpu_threads",
                "job",
                "wall_seconds",
                "checkpoint_pause_seconds",
                "checkpoint_write_seconds",
                "train_seconds",
                "images_per_second",
            )
        } | {
            "eval_seconds": float(metrics["eval_seconds"].sum()),
            "epochs": int(metrics["epoch"].max()),
            "final_train_acc": float(metrics["train_acc"].iloc[-1]),
            "final_test_acc": float(metrics["test_acc"].iloc[-1]),
        }
    return runs


#: A training log's line for one run and epoch (hw5repro.training.loop._metrics_row).
EPOCH_LINE = re.compile(
    r"(?P<run>\S+) epoch (?P<epoch>\d+) train_loss (?P<train_loss>\S+) "
    r"train_acc (?P<train_acc>\S+) test_acc (?P<test_acc>\S+) "
)


def logged_epochs(workdir: Path) -> pd.DataFrame:
    """Every (run, epoch) line of every training job's log, the last one where a resumed job
    logged an epoch twice."""
    rows = [
        {"run": m["run"], "epoch": int(m["epoch"])}
        | {k: float(m[k]) for k in ("train_loss", "train_acc", "test_acc")}
        for log in sorted((workdir / "results" / "logs" / "train").glob("*.log"))
        for m in EPOCH_LINE.finditer(log.read_text(errors="replace"))
    ]
    columns = ["run", "epoch", "train_loss", "train_acc", "test_acc"]
    frame = pd.DataFrame(rows, columns=columns).drop_duplicates(["run", "epoch"], keep="last")
    return frame.sort_values(["run", "epoch"], ignore_index=True)


def epochs_reached(workdir: Path) -> dict[str, int]:
    """The last epoch each run logged, over every training job's log."""
    return {
        run: int(e)
        for run, e in logged_epochs(workdir).groupby("run", sort=False)["epoch"].max().items()
    }


def outside_loop_seconds(jobs: dict[str, float], runs: dict[str, dict]) -> dict[str, float]:
    """Seconds of each training job outside its epoch loop: process start, imports, data,
    network, CUDA start-up before the first epoch (graph capture and kernel compilation happen
    in the loop's first epoch), writing the outputs after the last. A job's wall seconds
    (Snakemake's benchmark) less its loop's (``wall_seconds`` of its runs' run.json)."""
    loops = {r["job"]: r["wall_seconds"] for r in runs.values() if r.get("job")}
    return {
        f"train/{job}": round(jobs[f"train/{job}"] - loop, 2)
        for job, loop in sorted(loops.items())
        if f"train/{job}" in jobs and loop is not None
    }


def checkpoint_pause_seconds(runs: dict[str, dict]) -> dict[str, float]:
    """Seconds each training job's loop paused for its checkpoints (copying the runs' state to
    the host; the files are written in the background), from its runs' run.json."""
    return {
        f"train/{r['job']}": round(r["checkpoint_pause_seconds"], 3)
        for r in sorted(runs.values(), key=lambda r: r.get("job") or "")
        if r.get("job") and r.get("checkpoint_pause_seconds") is not None
    }


def partial_record(workdir: Path, wall: float, runs: int, epochs: int) -> dict:
    """Where a run stopped at its time limit stood, and its pace: the wall time of the whole run
    if the rest went as fast as the epochs done so far (start-up included, so an upper bound)."""
    reached = epochs_reached(workdir)
    done = sum(reached.values())
    return {
        "finished": False,
        "epochs_reached": reached,
        "run_epochs_done": done,
        "run_epochs_asked": runs * epochs,
        "projected_wall_seconds": wall * runs * epochs / done if done else None,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default=".")
    parser.add_argument("--wall", type=float, required=True, help="measured wall seconds")
    parser.add_argument("--command", required=True)
    parser.add_argument("--preset", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--partial", action="store_true", help="the run stopped at its limit")
    parser.add_argument("--runs", type=int, help="runs asked for (with --partial)")
    parser.add_argument("--epochs", type=int, help="epochs per run asked for (with --partial)")
    parser.add_argument("--logged-epochs", help="CSV of every epoch the training logs hold")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    report = workdir / "results" / "report" / "index.html"
    if args.partial:
        if not (args.runs and args.epochs):
            parser.error("--partial needs --runs and --epochs")
    elif not report.is_file():
        raise SystemExit(f"no finished report at {report}: the workflow did not complete")
    runs = run_summaries(workdir)
    jobs = job_seconds(workdir)
    record = {
        "benchmark": "workflow",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preset": args.preset,
        "command": args.command,
        "runs": len(runs),
        "workflow_wall_seconds": args.wall,
        "finished": True,
        "train_jobs": len([k for k in jobs if k.startswith("train")]),
        "device_name": next(iter(runs.values()))["device_name"] if runs else None,
        "python": platform.python_version(),
        "train_job_seconds": {k: v for k, v in jobs.items() if k.startswith("train")},
        "train_job_outside_loop_seconds": outside_loop_seconds(jobs, runs),
        "train_job_checkpoint_pause_seconds": checkpoint_pause_seconds(runs),
        "other_job_seconds": {k: v for k, v in jobs.items() if not k.startswith("train")},
        "summed_train_seconds": sum(r["train_seconds"] or 0 for r in runs.values()),
        "summed_eval_seconds": sum(r["eval_seconds"] for r in runs.values()),
        "run_details": runs,
    }
    if args.partial:
        record |= partial_record(workdir, args.wall, args.runs, args.epochs)
    if args.logged_epochs:
        logged_epochs(workdir).to_csv(args.logged_epochs, index=False)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "run_details"}, indent=2))
    return record


if __name__ == "__main__":
    main()
