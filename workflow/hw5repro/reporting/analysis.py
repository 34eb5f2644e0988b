"""Tables and facts of the memorisation experiment: final metrics, time to fit, seed statistics."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..data.experiment import LABEL_NOISE, Run

RUN_KEYS = ["run_id", "corruption", "ratio", "seed"]
#: Final-epoch statistics summarised across seeds (mean and sd).
SUMMARY_METRICS = [
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "test_error",
    "train_seconds",
    "epochs_to_fit",
]
#: Display names of the corruption kinds.
KIND_LABELS = {
    "true_labels": "true labels",
    "partial_labels": "partially corrupted labels",
    "random_labels": "random labels",
    "shuffled_pixels": "shuffled pixels",
    "random_pixels": "random pixels",
    "gaussian": "Gaussian",
}


def epochs_to_fit(train_acc: Sequence[float], threshold: float) -> int | None:
    """First epoch (1-based) whose training accuracy reaches ``threshold``; None if none does."""
    return next((epoch for epoch, acc in enumerate(train_acc, 1) if acc >= threshold), None)


def kind_of(corruption: str, ratio: float) -> str:
    """Zhang et al.'s name for a run: true/partial/random labels or an input corruption."""
    if corruption != LABEL_NOISE:
        return corruption
    return {0.0: "true_labels", 1.0: "random_labels"}.get(float(ratio), "partial_labels")


def keyed_by_run(metrics: pd.DataFrame, run: Run) -> pd.DataFrame:
    """One run's per-epoch metrics with the run's keys (RUN_KEYS) as leading columns."""
    keys = {"run_id": run.name, "corruption": run.corruption, "ratio": run.ratio, "seed": run.seed}
    return pd.concat([pd.DataFrame(keys, index=metrics.index), metrics], axis=1)


def load_epochs(metrics_paths: Sequence[str | Path]) -> pd.DataFrame:
    """All per-epoch metrics of all runs in one long table, keyed by run."""
    frames = [
        keyed_by_run(pd.read_csv(path), Run.from_name(Path(path).parent.name))
        for path in metrics_paths
    ]
    return pd.concat(frames, ignore_index=True)


def final_metrics(epochs: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """One row per run: last-epoch metrics, total training seconds and epochs to fit."""
    rows = []
    for _, frame in epochs.groupby("run_id", sort=False):
        frame = frame.sort_values("epoch")
        last = frame.iloc[-1]
        fit = epochs_to_fit(frame["train_acc"].tolist(), threshold)
        rows.append(
            {
                **{k: last[k] for k in RUN_KEYS},
                "kind": kind_of(last["corruption"], last["ratio"]),
                "epochs": int(last["epoch"]),
                **{k: last[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")},
                "test_error": 1.0 - last["test_acc"],
                "train_seconds": frame["epoch_seconds"].sum(),
                "epochs_to_fit": float("nan") if fit is None else fit,
            }
        )
    return pd.DataFrame(rows).sort_values(["corruption", "ratio", "seed"], ignore_index=True)


def summarise(final: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd across seeds per (corruption, ratio), runs fitted, and the slowdown of fitting
    relative to true labels."""
    grouped = final.groupby(["corruption", "ratio"], sort=True)
    table = grouped[SUMMARY_METRICS].agg(["mean", "std"])
    table.columns = [f"{m}_{'sd' if s == 'std' else s}" for m, s in table.columns]
    table.insert(0, "n_seeds", grouped.size())
    table.insert(1, "kind", grouped["kind"].first())
    table["fitted_runs"] = grouped["epochs_to_fit"].count()
    table = table.reset_index()
    base = table.loc[(table.corruption == LABEL_NOISE) & (table.ratio == 0.0), "epochs_to_fit_mean"]
    reference = base.iloc[0] if len(base) else float("nan")
    table["slowdown"] = table["epochs_to_fit_mean"] / reference
    return table


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def facts(final: pd.DataFrame, summary: pd.DataFrame, config: dict, infos: Sequence[dict]) -> dict:
    """Numbers the report's prose cites, in a JSON-friendly dict (NaN -> None)."""

    def stats(rows: pd.DataFrame) -> dict:
        return {
            "runs": len(rows),
            "fitted_runs": int(rows["epochs_to_fit"].notna().sum()),
            **{f"{m}_mean": _clean(float(rows[m].mean())) for m in SUMMARY_METRICS},
            **{f"{m}_min": _clean(float(rows[m].min())) for m in ("train_acc", "test_acc")},
        }

    labels = final[final.corruption == LABEL_NOISE]
    by_ratio = [{"ratio": r, **stats(rows)} for r, rows in labels.groupby("ratio")]
    by_corruption = [
        {"corruption": kind, "label": KIND_LABELS[kind], **stats(rows)}
        for kind, rows in final.groupby("kind")
        if kind != "partial_labels"
    ]
    by_kind = {entry["corruption"]: entry for entry in by_corruption}
    exp = config["experiment"]
    return {
        "fit_threshold": exp["fit_threshold"],
        "epochs": config["training"]["epochs"],
        "train_size": config["data"]["train_size"],
        "test_size": infos[0]["test_images"] if infos else config["data"]["test_size"],
        "width": config["model"]["width"],
        "parameters": infos[0]["parameters"] if infos else None,
        "label_ratios": sorted(exp["label_ratios"]),
        "input_corruptions": list(exp["input_corruptions"]),
        "seeds": list(exp["seeds"]),
        "random_labels": by_kind.get("random_labels"),
        "true_labels": by_kind.get("true_labels"),
        "by_ratio": by_ratio,
        "by_corruption": by_corruption,
        **{key: sorted({i[key] for i in infos}) for key in ("device", "device_name", "precision")},
        # how the training step ran: "CUDA graph" (training.cuda_graphs) or "eager"
        "step": sorted({"CUDA graph" if i.get("cuda_graphs") else "eager" for i in infos}),
        "summary": [{k: _clean(v) for k, v in row.items()} for row in summary.to_dict("records")],
    }


def tables_job(metrics_paths, info_paths, config, outputs) -> None:
    """The Snakemake job: write epochs.csv, final_metrics.csv, summary.csv, memorisation.json."""
    infos = [json.loads(Path(p).read_text()) for p in info_paths]
    epochs = load_epochs(metrics_paths)
    final = final_metrics(epochs, config["experiment"]["fit_threshold"])
    summary = summarise(final)
    epochs.to_csv(outputs.epochs, index=False)
    final.to_csv(outputs.final, index=False)
    summary.to_csv(outputs.summary, index=False)
    Path(outputs.facts).write_text(json.dumps(facts(final, summary, config, infos), indent=2))
