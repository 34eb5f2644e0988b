"""Figures of problem 6: the label-noise legend is sorted and coloured on a sequential palette."""

import numpy as np
import pandas as pd
import pytest
import seaborn as sns

from hw5repro import figures
from hw5repro.experiment import Run

RATIOS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


@pytest.fixture
def epochs():
    """Per-epoch rows in the order of the tables (sorted by run name: labels_r0.2 < labels_r0_)."""
    runs = sorted((Run("labels", r, 0) for r in RATIOS), key=lambda run: run.name)
    rows = [
        {
            "run_id": run.name,
            "corruption": "labels",
            "ratio": run.ratio,
            "seed": 0,
            "epoch": epoch,
            "train_loss": 2.3 - epoch * (1 - run.ratio) / 10,
            "train_acc": min(1.0, 0.1 + epoch * (1 - run.ratio / 2) / 5),
            "train_acc_kept": 0.5,
            "train_acc_replaced": 0.2,
        }
        for run in runs
        for epoch in range(1, 5)
    ]
    frame = pd.DataFrame(rows)
    assert frame["ratio"].drop_duplicates().tolist() == [0.2, 0.4, 0.6, 0.8, 0.0, 1.0]
    return frame


def captured(monkeypatch):
    saved = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, stem: saved.append(fig))
    return saved


@pytest.mark.parametrize("plot", ["curves", "kept_vs_replaced"])
def test_label_noise_legend_sorted_on_a_sequential_palette(epochs, monkeypatch, tmp_path, plot):
    saved = captured(monkeypatch)
    if plot == "curves":  # Figure 4 (b)
        figures._curves(epochs, "train_acc", "training accuracy", tmp_path / "b", "(b)")
        expected = RATIOS
    else:
        figures._kept_vs_replaced(epochs, tmp_path / "h")
        expected = RATIOS[1:-1]
    legend = saved[0].axes[0].get_legend()
    entries = [
        (text.get_text(), handle)
        for text, handle in zip(legend.get_texts(), legend.legend_handles, strict=True)
        if text.get_text().endswith("%")  # the hue entries (a style legend may follow)
    ]
    levels = [f"{100 * r:.0f}%" for r in expected]
    assert [text for text, _ in entries] == levels
    colours = [tuple(handle.get_color()[:3]) for _, handle in entries]
    assert np.allclose(colours, sns.color_palette("viridis", len(levels)))
    # 0% and 80% (and every other pair) clearly apart
    gaps = [np.abs(np.subtract(a, b)).sum() for a, b in zip(colours[:-1], colours[1:], strict=True)]
    assert min(gaps) > 0.1


def test_ratio_hues_label_every_ratio_apart():
    order, palette = figures.ratio_hues([0.125, 0.1, 1.0, 0.0, 0.1])
    assert order == ["0%", "10%", "12.5%", "100%"]
    assert list(palette) == order
