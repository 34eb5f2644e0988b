"""Figures of the memorisation experiment: the homework's Figure 4 (a-e), Zhang et al.'s Figure 1
(a-c) and further Zhang/Arpit analyses, each as PNG and PDF. Over several seeds, curves show the
mean and a band of +-1 sd; points show mean +- sd.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from ..plotting import save_figure
from .analysis import KIND_LABELS, LABEL_NOISE, kind_of
from .figure_names import FIGURES as FIGURES  # re-exported: the names of what figures_job draws

NUM_CLASSES = 10
#: Zhang et al.'s kinds of data in their Figure 1 (a), in its legend order (no partial labels).
ZHANG_KINDS = ("true_labels", "random_labels", "shuffled_pixels", "random_pixels", "gaussian")
KIND_COLOURS = dict(zip(ZHANG_KINDS, sns.color_palette("deep", len(ZHANG_KINDS)), strict=True))
#: seaborn's arguments for points against the label-noise ratio: mean +- sd over the seeds.
RATIO_POINTS = {"x": "ratio", "marker": "o", "errorbar": "sd", "err_style": "bars"}
RATIO_LABEL = "fraction of random labels"
LOSS_LABEL = "training loss (cross-entropy)"


def _style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.2)


def _percent(ratio: float) -> str:
    """0.2 -> '20%', 0.125 -> '12.5%' (no two ratios of a sweep share a label)."""
    return f"{100 * float(ratio):.10g}%"


def _ratio_label(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["label noise"] = [_percent(r) for r in frame["ratio"]]
    return frame


def ratio_hues(ratios) -> tuple[list[str], dict[str, tuple]]:
    """Legend order and colours of the label-noise curves: the sorted ratios on viridis."""
    levels = [_percent(r) for r in sorted(set(float(r) for r in ratios))]
    return levels, dict(zip(levels, sns.color_palette("viridis", len(levels)), strict=True))


def _by_ratio(ratios) -> dict:
    """seaborn's arguments for one colour per label-noise ratio (column "label noise")."""
    order, palette = ratio_hues(ratios)
    return {"hue": "label noise", "hue_order": order, "palette": palette}


def _band(frame: pd.DataFrame) -> str | None:
    return "sd" if frame.groupby(["ratio", "epoch"])["seed"].nunique().max() > 1 else None


def _curves(epochs: pd.DataFrame, column: str, ylabel: str, stem: Path, title: str) -> None:
    labels = _ratio_label(epochs[epochs.corruption == LABEL_NOISE])
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    hues = _by_ratio(labels["ratio"])
    sns.lineplot(data=labels, x="epoch", y=column, errorbar=_band(labels), ax=ax, **hues)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.legend(title="random labels", fontsize="small", ncols=2)
    save_figure(fig, stem)


def _random_labels_curves(epochs: pd.DataFrame, stem: Path) -> None:
    random = epochs[(epochs.corruption == LABEL_NOISE) & (epochs.ratio == 1.0)]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if random.empty:
        _nothing(ax, "no run with 100% random labels")
    else:
        line = {"data": random, "x": "epoch", "legend": False}
        line["errorbar"] = "sd" if random["seed"].nunique() > 1 else None
        sns.lineplot(y="train_loss", color="C0", ax=ax, label="training loss", **line)
        twin = ax.twinx()
        sns.lineplot(y="train_acc", color="C3", ax=twin, label="training accuracy", **line)
        twin.set(ylabel="training accuracy", ylim=(0, 1.02))
        twin.grid(False)
        handles = ax.get_lines()[:1] + twin.get_lines()[:1]
        ax.legend(handles, ["training loss", "training accuracy"], loc="center right")
    ax.set(xlabel="epoch", ylabel=LOSS_LABEL, title="(c) 100% random labels: loss and accuracy")
    save_figure(fig, stem)


def _against_ratio(
    final: pd.DataFrame,
    column: str,
    ylabel: str,
    stem: Path,
    title: str,
    chance: float | None = None,
) -> None:
    labels = final[final.corruption == LABEL_NOISE]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    label = "mean over seeds" if labels.seed.nunique() > 1 else None
    sns.lineplot(data=labels, y=column, ax=ax, label=label, **RATIO_POINTS)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", label=f"chance ({chance:.0%})")
    ax.set(xlabel=RATIO_LABEL, ylabel=ylabel, title=title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    save_figure(fig, stem)


def _never_fitted(ax, x, y, label: str) -> None:
    """Runs that never reached the fit threshold: a red cross each, at the axis' "never"."""
    ax.scatter(x, y, marker="x", color="C3", s=60, zorder=3, label=label)


def _time_to_fit(final: pd.DataFrame, summary: pd.DataFrame, threshold: float, stem: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), width_ratios=(3, 2))
    never = int(final["epochs"].max()) + 1
    plotted = final.assign(
        fitted=final.epochs_to_fit.notna(), shown=final.epochs_to_fit.fillna(never)
    )
    labels = plotted[plotted.corruption == LABEL_NOISE]
    fitted = labels[labels.fitted]
    sns.lineplot(data=fitted, y="shown", ax=left, label="reached threshold", **RATIO_POINTS)
    unfit, not_reached = labels[~labels.fitted], f"not reached in {never - 1} epochs"
    if len(unfit):
        _never_fitted(left, unfit.ratio, unfit.shown, not_reached)
    epochs_label = f"epochs to {threshold:.0%} train acc."
    left.set(xlabel=RATIO_LABEL, ylabel=epochs_label, title="(f) time to fit vs label noise")
    left.legend(fontsize="small")
    kinds = plotted[plotted.kind != "partial_labels"].copy()
    kinds["kind"] = kinds["kind"].map(KIND_LABELS)
    order = [KIND_LABELS[k] for k in KIND_LABELS if KIND_LABELS[k] in set(kinds["kind"])]
    # bars: mean +- sd of the runs that fitted; one that never did: a cross at the right end
    if kinds.fitted.any():
        sns.barplot(
            data=kinds[kinds.fitted],
            y="kind",
            x="shown",
            order=order,
            errorbar="sd",
            ax=right,
            color="C0",
        )
    missed = kinds[~kinds.fitted]
    if len(missed):
        _never_fitted(right, missed["shown"], [order.index(k) for k in missed["kind"]], not_reached)
        right.legend(fontsize="small", loc="lower right")
    box = {"facecolor": "white", "alpha": 0.8, "linewidth": 0}
    for i, kind in enumerate(order):
        rows = kinds[kinds.kind == kind]
        label = f"{int(rows.fitted.sum())}/{len(rows)} fitted"
        right.text(never * 0.02, i, label, va="center", fontsize="small", bbox=box)
    right.set_yticks(range(len(order)), order)
    right.set(
        xlim=(0, never * 1.05),
        ylim=(len(order) - 0.5, -0.5),
        xlabel=epochs_label,
        ylabel="",
        title="by corruption",
    )
    save_figure(fig, stem)


def _generalisation_gap(final: pd.DataFrame, stem: Path) -> None:
    labels = final[final.corruption == LABEL_NOISE].assign(train_error=lambda f: 1 - f.train_acc)
    names = {"train_error": "training error", "test_error": "test error"}
    long = labels.melt(["ratio", "seed"], list(names), var_name="set", value_name="error")
    long["set"] = long["set"].map(names)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    sns.lineplot(data=long, y="error", hue="set", ax=ax, **RATIO_POINTS)
    ax.axhline(1 - 1 / NUM_CLASSES, color="grey", linestyle="--", label="chance (90%)")
    ax.set(
        xlabel=RATIO_LABEL,
        ylabel="error",
        ylim=(-0.02, 1.0),
        title="(g) generalisation gap = test error - training error",
    )
    ax.legend()
    save_figure(fig, stem)


@dataclass(frozen=True)
class AccuracySplit:
    """Two training-accuracy columns splitting the examples, with legend labels, and a title."""

    columns: dict[str, str]
    title: str


#: Arpit et al.'s split: the examples whose label is their class, and those whose label is wrong.
CLEAN_VS_MISLABELLED = AccuracySplit(
    {"train_acc_clean": "clean labels", "train_acc_mislabelled": "wrong labels"},
    "(h) training accuracy: clean vs mislabelled examples",
)


def accuracy_split(
    epochs: pd.DataFrame, stem: Path, split: AccuracySplit = CLEAN_VS_MISLABELLED
) -> None:
    partial = epochs[(epochs.corruption == LABEL_NOISE) & (epochs.ratio > 0) & (epochs.ratio < 1)]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if partial.empty:
        _nothing(ax, "no partially corrupted runs in this configuration")
    else:
        long = _ratio_label(partial).melt(
            id_vars=["label noise", "epoch", "seed"],
            value_vars=list(split.columns),
            var_name="examples",
            value_name="accuracy",
        )
        long["examples"] = long["examples"].map(split.columns)
        band = "sd" if long.seed.nunique() > 1 else None
        hues = _by_ratio(partial["ratio"])
        sns.lineplot(
            data=long, x="epoch", y="accuracy", style="examples", errorbar=band, ax=ax, **hues
        )
        ax.legend(fontsize="small", ncols=2)
    ax.set(
        xlabel="epoch", ylabel="training accuracy on the subset", ylim=(0, 1.02), title=split.title
    )
    save_figure(fig, stem)


def mean_sd(frame: pd.DataFrame, by: str | list[str], column: str) -> pd.DataFrame:
    """Mean, sample sd (ddof=1, as seaborn's errorbar="sd") and number of values of ``column``
    per group of ``by``, groups sorted; missing values (a run that never fitted) are left out of
    all three, so ``n`` counts the values the mean is over and sd is NaN where ``n`` < 2."""
    stats = frame.groupby(by, sort=True)[column].agg(mean="mean", sd="std", n="count")
    return stats.reset_index()


def _mean_band(ax, stats: pd.DataFrame, x: str, colour, label: str, **line) -> None:
    """The mean as a line and a shaded band of +-1 sd wherever it is over two or more values."""
    ax.plot(stats[x], stats["mean"], color=colour, label=label, **line)
    spread = (stats["n"] > 1).to_numpy()
    if spread.any():
        low, high = stats["mean"] - stats["sd"], stats["mean"] + stats["sd"]
        ax.fill_between(stats[x], low, high, where=spread, color=colour, alpha=0.25, linewidth=0)


def _nothing(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", transform=ax.transAxes)


def _zhang_figure1(epochs: pd.DataFrame, final: pd.DataFrame, threshold: float, stem) -> None:
    """Zhang et al.'s Figure 1 from these runs, mean and +-1 sd band over seeds: (a) training
    loss per kind of data, (b) epochs to fit and (c) test error against label noise."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(16, 4.6))
    pairs = zip(epochs.corruption, epochs.ratio, strict=True)
    kinds = epochs.assign(kind=[kind_of(corruption, ratio) for corruption, ratio in pairs])
    for kind in ZHANG_KINDS:
        rows = kinds[kinds.kind == kind]
        if len(rows):
            stats = mean_sd(rows, "epoch", "train_loss")
            _mean_band(a, stats, "epoch", KIND_COLOURS[kind], KIND_LABELS[kind])
    a.set(xlabel="epoch", ylabel=LOSS_LABEL, title="(a) learning curves")
    a.xaxis.set_major_locator(MaxNLocator(integer=True))
    a.legend(fontsize="small")

    labels = final[final.corruption == LABEL_NOISE]
    never = int(final["epochs"].max()) + 1 if len(final) else 1
    if labels.empty:
        _nothing(b, "no label-noise runs")
        _nothing(c, "no label-noise runs")
    else:
        fit = mean_sd(labels, "ratio", "epochs_to_fit")
        _mean_band(b, fit, "ratio", "C0", "mean of the runs that fitted", marker="o")
        unfit = labels[labels.epochs_to_fit.isna()]
        if len(unfit):
            label = f"not fitted in {never - 1} epochs (not in the mean)"
            _never_fitted(b, unfit.ratio, [never] * len(unfit), label)
            runs = labels.groupby("ratio").size()
            for ratio in sorted(set(unfit.ratio)):
                fitted = int(fit.loc[fit.ratio == ratio, "n"].iloc[0])
                b.annotate(
                    f"{fitted}/{runs[ratio]} fitted",
                    (ratio, never),
                    xytext=(0, 7),
                    textcoords="offset points",
                    ha="center",
                    fontsize="small",
                    color="C3",
                )
        b.set_ylim(0, never * 1.2)
        b.set_xlim(-0.1, 1.1)
        b.legend(fontsize="small", loc="lower right")
        error = mean_sd(labels, "ratio", "test_error")
        _mean_band(c, error, "ratio", "C0", "test error", marker="o")
        chance = 1 - 1 / NUM_CLASSES
        c.axhline(chance, color="grey", linestyle="--", label=f"chance ({chance:.0%})")
        c.set_ylim(-0.02, 1.0)
        c.legend(fontsize="small", loc="lower right")
    epochs_label = f"epochs to {threshold:.0%} train acc."
    b.set(xlabel=RATIO_LABEL, ylabel=epochs_label, title="(b) convergence slowdown")
    c.set(xlabel=RATIO_LABEL, ylabel="test error", title="(c) generalisation error growth")
    save_figure(fig, stem)


def _drawings(epochs, final, summary, threshold: float, out: Path) -> list[partial]:
    """Every figure as a call that draws and saves it, slowest first (for parallel workers)."""

    def curves(column, ylabel, name, title):
        return partial(_curves, epochs, column, ylabel, out / name, title)

    def against(column, ylabel, name, title, **kwargs):
        return partial(_against_ratio, final, column, ylabel, out / name, title, **kwargs)

    chance = 1 - 1 / NUM_CLASSES
    return [
        partial(_zhang_figure1, epochs, final, threshold, out / "zhang_figure1"),
        curves("train_loss", LOSS_LABEL, "train_loss", "(a) training loss"),
        curves("train_acc", "training accuracy", "train_accuracy", "(b) training accuracy"),
        partial(_random_labels_curves, epochs, out / "random_labels_curves"),
        against("train_seconds", "training time [s]", "training_time", "(d) training time"),
        against("test_error", "test error", "test_error", "(e) test error", chance=chance),
        partial(_time_to_fit, final, summary, threshold, out / "time_to_fit"),
        partial(_generalisation_gap, final, out / "generalisation_gap"),
        partial(accuracy_split, epochs, out / "clean_vs_mislabelled"),
    ]


def _call(drawing: partial) -> None:
    drawing()


def figures_job(
    epochs_csv, final_csv, summary_csv, threshold: float, out_dir, workers: int = 1
) -> None:
    """The Snakemake job: every figure of problem 6 as PNG and PDF in ``out_dir``; with
    ``workers`` > 1, drawn by that many processes forked from this one (sharing its imports)."""
    _style()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    epochs, final = pd.read_csv(epochs_csv), pd.read_csv(final_csv)
    summary = pd.read_csv(summary_csv)
    drawings = _drawings(epochs, final, summary, threshold, out)
    if workers <= 1:
        for drawing in drawings:
            drawing()
        return
    with multiprocessing.get_context("fork").Pool(min(workers, len(drawings))) as pool:
        pool.map(_call, drawings, chunksize=1)
