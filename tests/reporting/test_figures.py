"""Figures of problem 6: the label-noise legend is sorted and coloured on a sequential palette;
Zhang et al.'s Figure 1 draws mean +- sd bands over seeds and marks the runs that never fitted."""

import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from matplotlib.collections import PolyCollection

from hw5repro.data.experiment import Run
from hw5repro.reporting import figures
from hw5repro.reporting.analysis import kind_of

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
            "train_acc_clean": 0.5,
            "train_acc_mislabelled": 0.2,
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


@pytest.mark.parametrize("plot", ["curves", "clean_vs_mislabelled"])
def test_label_noise_legend_sorted_on_a_sequential_palette(epochs, monkeypatch, tmp_path, plot):
    saved = captured(monkeypatch)
    if plot == "curves":  # Figure 4 (b)
        figures._curves(epochs, "train_acc", "training accuracy", tmp_path / "b", "(b)")
        expected = RATIOS
    else:
        figures.accuracy_split(epochs, tmp_path / "h")
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


# --- Zhang et al.'s Figure 1: mean and +-1 sd bands over seeds ----------------------------------

SEEDS = (0, 1, 2)
EPOCHS = 4
#: (corruption, ratio) -> epochs to fit of seeds 0, 1, 2 (NaN: never reached the threshold)
FIT = {
    ("labels", 0.0): (5, 5, 8),
    ("labels", 0.5): (10, 12, 14),
    ("labels", 1.0): (30, 36, float("nan")),
    ("shuffled_pixels", 0.0): (7, 8, 9),
}


def zhang_loss(corruption, ratio, seed, epoch):
    """Training loss that differs per kind of data, seed and epoch (no two seeds agree)."""
    offset = {"labels": 0.0, "shuffled_pixels": 0.3}[corruption]
    return 2.3 - epoch * (1 - ratio / 2) / 5 + offset + 0.1 * seed**2 * epoch / EPOCHS


def zhang_tables():
    """Per-epoch and final tables of true, 50% and 100% random labels and shuffled pixels."""
    epochs = pd.DataFrame(
        {
            "run_id": Run(corruption, ratio, seed).name,
            "corruption": corruption,
            "ratio": ratio,
            "seed": seed,
            "epoch": epoch,
            "train_loss": zhang_loss(corruption, ratio, seed, epoch),
        }
        for corruption, ratio in FIT
        for seed in SEEDS
        for epoch in range(1, EPOCHS + 1)
    )
    final = pd.DataFrame(
        {
            "corruption": corruption,
            "ratio": ratio,
            "seed": seed,
            "epochs": 40,
            "test_error": 0.1 + 0.8 * ratio + 0.01 * seed**2,
            "epochs_to_fit": FIT[corruption, ratio][seed],
        }
        for corruption, ratio in FIT
        for seed in SEEDS
    )
    return epochs, final


def hand_mean_sd(values):
    values = [v for v in values if not np.isnan(v)]
    mean = sum(values) / len(values)
    return mean, np.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def assert_band(band, xs, means, sds):
    """Every vertex of the fill_between polygon above x lies at mean - sd or mean + sd, and both
    edges are there."""
    vertices = np.concatenate([path.vertices for path in band.get_paths()])
    for x, mean, sd in zip(xs, means, sds, strict=True):
        ys = vertices[np.isclose(vertices[:, 0], x), 1]
        assert ys.size, x
        assert np.allclose(np.sort(np.unique(ys.round(12)))[[0, -1]], [mean - sd, mean + sd]), x
        assert np.all(np.isclose(ys, mean - sd) | np.isclose(ys, mean + sd)), x


def zhang_figure(monkeypatch, tmp_path, seeds=SEEDS):
    saved = captured(monkeypatch)
    epochs, final = zhang_tables()
    figures._zhang_figure1(
        epochs[epochs.seed.isin(seeds)], final[final.seed.isin(seeds)], 0.95, tmp_path / "z"
    )
    (fig,) = saved
    return fig


def test_mean_sd_is_the_sample_sd_over_seeds():
    frame = pd.DataFrame(
        {
            "ratio": [0.5, 0.0, 0.5, 0.0, 0.5, 1.0, 0.0],
            "value": [2.0, 1.0, float("nan"), 2.0, 4.0, 7.0, 4.0],
        }
    )
    stats = figures.mean_sd(frame, "ratio", "value")
    assert stats["ratio"].tolist() == [0.0, 0.5, 1.0]
    assert np.allclose(stats["mean"], [7 / 3, 3.0, 7.0])
    # sd of (1, 2, 4) with ddof=1: sqrt(((4/3)^2 + (1/3)^2 + (5/3)^2) / 2); of (2, 4): sqrt(2)
    assert np.allclose(stats["sd"][:2], [np.sqrt(42 / 18), np.sqrt(2)])
    assert np.isnan(stats["sd"][2])  # one value: no spread
    assert stats["n"].tolist() == [3, 2, 1]  # the missing value is not counted


def test_zhang_figure1_learning_curves_per_kind_with_sd_bands(monkeypatch, tmp_path):
    fig = zhang_figure(monkeypatch, tmp_path)
    assert len(fig.axes) == 3
    a = fig.axes[0]
    assert a.get_title() == "(a) learning curves"
    kinds = {
        "true labels": ("labels", 0.0),
        "random labels": ("labels", 1.0),
        "shuffled pixels": ("shuffled_pixels", 0.0),
    }  # 50% random labels are partial labels: not in panel (a)
    assert [line.get_label() for line in a.lines] == list(kinds)
    assert [t.get_text() for t in a.get_legend().get_texts()] == list(kinds)
    assert len(bands(a)) == len(kinds)
    xs = list(range(1, EPOCHS + 1))
    for line, band, (corruption, ratio) in zip(a.lines, bands(a), kinds.values(), strict=True):
        stats = [hand_mean_sd([zhang_loss(corruption, ratio, s, e) for s in SEEDS]) for e in xs]
        means, sds = zip(*stats, strict=True)
        assert np.allclose(line.get_xdata(), xs)
        assert np.allclose(line.get_ydata(), means)
        assert_band(band, xs, means, sds)
        assert np.allclose(band.get_facecolor()[0][:3], line.get_color()[:3])


def test_zhang_figure1_time_to_fit_leaves_out_and_marks_unfitted_runs(monkeypatch, tmp_path):
    b = zhang_figure(monkeypatch, tmp_path).axes[1]
    assert b.get_title() == "(b) convergence slowdown"
    (line,) = b.lines
    ratios = [0.0, 0.5, 1.0]
    # 100% random labels: mean of the two fitted runs (30, 36), not of 30, 36 and "never"
    stats = [hand_mean_sd(FIT["labels", r]) for r in ratios]
    assert [m for m, _ in stats] == [6.0, 12.0, 33.0]
    assert np.allclose(line.get_xdata(), ratios)
    assert np.allclose(line.get_ydata(), [m for m, _ in stats])
    (band,) = bands(b)
    assert_band(band, ratios, *zip(*stats, strict=True))
    # the run that never fitted: a cross at the top (epochs + 1), labelled 2 of 3 fitted
    (crosses,) = [c for c in b.collections if not isinstance(c, PolyCollection)]
    assert np.allclose(crosses.get_offsets(), [[1.0, 41.0]])
    assert "not fitted in 40 epochs" in crosses.get_label()
    assert [t.get_text() for t in b.texts] == ["2/3 fitted"]


def test_zhang_figure1_time_to_fit_of_a_single_fitted_run_has_no_band(monkeypatch, tmp_path):
    saved = captured(monkeypatch)
    epochs, final = zhang_tables()
    final.loc[(final.ratio == 1.0) & (final.seed == 1), "epochs_to_fit"] = float("nan")
    figures._zhang_figure1(epochs, final, 0.95, tmp_path / "z")
    b = saved[0].axes[1]
    assert np.allclose(b.lines[0].get_ydata(), [6.0, 12.0, 30.0])  # 1.0: seed 0 alone
    (band,) = bands(b)
    vertices = np.concatenate([path.vertices for path in band.get_paths()])
    assert not np.isclose(vertices[:, 0], 1.0).any()  # no spread from one run
    assert_band(band, [0.0, 0.5], [6.0, 12.0], [np.sqrt(3), 2.0])
    (crosses,) = [c for c in b.collections if not isinstance(c, PolyCollection)]
    assert np.allclose(crosses.get_offsets(), [[1.0, 41.0], [1.0, 41.0]])
    assert [t.get_text() for t in b.texts] == ["1/3 fitted"]


def test_zhang_figure1_test_error_with_chance_line(monkeypatch, tmp_path):
    c = zhang_figure(monkeypatch, tmp_path).axes[2]
    assert c.get_title() == "(c) generalisation error growth"
    mean_line, chance = c.lines
    ratios = [0.0, 0.5, 1.0]
    stats = [hand_mean_sd([0.1 + 0.8 * r + 0.01 * s**2 for s in SEEDS]) for r in ratios]
    assert np.allclose(mean_line.get_ydata(), [m for m, _ in stats])
    (band,) = bands(c)
    assert_band(band, ratios, *zip(*stats, strict=True))
    assert np.allclose(chance.get_ydata(), [0.9, 0.9])


def test_zhang_figure1_one_seed_draws_lines_without_bands(monkeypatch, tmp_path):
    fig = zhang_figure(monkeypatch, tmp_path, seeds=(1,))
    a, b, c = fig.axes
    assert not any(bands(ax) for ax in fig.axes)
    assert len(a.lines) == 3
    assert np.allclose(
        a.lines[0].get_ydata(), [zhang_loss("labels", 0.0, 1, e) for e in (1, 2, 3, 4)]
    )
    assert np.allclose(b.lines[0].get_ydata(), [5, 12, 36])
    assert np.allclose(c.lines[0].get_ydata(), [0.11, 0.51, 0.91])


def test_figures_job_writes_every_figure(tmp_path):
    epochs, final = zhang_tables()
    epochs = epochs.assign(train_acc=0.5, train_acc_clean=0.6, train_acc_mislabelled=0.3)
    final = final.assign(
        run_id=[
            Run(co, r, s).name
            for co, r, s in zip(final.corruption, final.ratio, final.seed, strict=True)
        ],
        kind=[kind_of(co, r) for co, r in zip(final.corruption, final.ratio, strict=True)],
        train_acc=1.0,
        train_seconds=12.0,
    )
    paths = {name: tmp_path / f"{name}.csv" for name in ("epochs", "final", "summary")}
    epochs.to_csv(paths["epochs"], index=False)
    final.to_csv(paths["final"], index=False)
    final.to_csv(paths["summary"], index=False)  # not read by any figure
    figures.figures_job(paths["epochs"], paths["final"], paths["summary"], 0.95, tmp_path / "f")
    written = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert written == sorted(f"{n}.{ext}" for n in figures.FIGURES for ext in ("png", "pdf"))
    # Drawn by forked workers (the rule's threads): the same files, the same pixels.
    tables = [paths[name] for name in ("epochs", "final", "summary")]
    figures.figures_job(*tables, 0.95, tmp_path / "parallel", workers=2)
    assert sorted(p.name for p in (tmp_path / "parallel").iterdir()) == written
    for name in figures.FIGURES:
        png = f"{name}.png"
        assert (tmp_path / "parallel" / png).read_bytes() == (tmp_path / "f" / png).read_bytes()


def test_time_to_fit_by_corruption_bars_only_fitted_runs(monkeypatch, tmp_path):
    """The right panel of (f): a bar is the mean epochs to fit of the runs that fitted; a run
    that never did is a cross at "never" (epochs + 1), not part of a bar; a kind whose runs all
    failed to fit has no bar at all."""
    _, final = zhang_tables()
    final.loc[final.corruption == "shuffled_pixels", "epochs_to_fit"] = float("nan")
    final = final.assign(
        kind=[kind_of(co, r) for co, r in zip(final.corruption, final.ratio, strict=True)]
    )
    saved = captured(monkeypatch)
    figures._time_to_fit(final, None, 0.99, tmp_path / "f")
    right = saved[0].axes[1]
    labels = [t.get_text() for t in right.get_yticklabels()]
    assert labels == ["true labels", "random labels", "shuffled pixels"]
    widths = sorted(round(bar.get_width(), 6) for bar in right.patches if bar.get_width() > 0)
    assert widths == [6.0, 33.0]  # true labels (5, 5, 8), random labels (30, 36; one never)
    (crosses,) = right.collections[-1:]
    # random labels' unfitted seed and all three shuffled-pixel runs, at 41 = 40 epochs + 1
    assert sorted(map(tuple, crosses.get_offsets().tolist())) == [
        (41.0, 1.0),
        (41.0, 2.0),
        (41.0, 2.0),
        (41.0, 2.0),
    ]
    assert [t.get_text() for t in right.texts] == ["3/3 fitted", "2/3 fitted", "0/3 fitted"]
