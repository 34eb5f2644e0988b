"""Time to fit and the seed statistics, on known curves."""

import math

import pandas as pd
import pytest

from hw5repro.reporting.analysis import epochs_to_fit, final_metrics, kind_of, summarise


def test_epochs_to_fit_on_known_curves():
    assert epochs_to_fit([0.1, 0.5, 0.99, 1.0], 0.99) == 3
    assert epochs_to_fit([0.995], 0.99) == 1
    assert epochs_to_fit([0.1, 0.98, 0.989], 0.99) is None  # never reached: reported as such
    assert epochs_to_fit([0.2, 0.95, 0.7, 0.96], 0.95) == 2  # first crossing, not last


def _epochs(run_id, corruption, ratio, seed, accs, seconds=1.0):
    return pd.DataFrame(
        {
            "run_id": run_id,
            "corruption": corruption,
            "ratio": ratio,
            "seed": seed,
            "epoch": range(1, len(accs) + 1),
            "train_loss": [1.0] * len(accs),
            "train_acc": accs,
            "test_loss": [2.0] * len(accs),
            "test_acc": [0.1] * len(accs),
            "epoch_seconds": [seconds] * len(accs),
        }
    )


def test_final_metrics_and_summary():
    epochs = pd.concat(
        [
            _epochs("labels_r0_s0", "labels", 0.0, 0, [0.5, 0.99, 1.0]),
            _epochs("labels_r0_s1", "labels", 0.0, 1, [0.5, 0.9, 0.995]),
            _epochs("labels_r1_s0", "labels", 1.0, 0, [0.1, 0.2, 0.3], seconds=2.0),
            _epochs("labels_r1_s1", "labels", 1.0, 1, [0.1, 0.5, 0.99], seconds=2.0),
        ]
    )
    final = final_metrics(epochs, threshold=0.99)
    row = final.set_index("run_id").loc["labels_r1_s0"]
    assert math.isnan(row.epochs_to_fit) and row.train_seconds == 6.0
    assert row.test_error == pytest.approx(0.9) and row.kind == "random_labels"
    summary = summarise(final).set_index("ratio")
    assert summary.loc[0.0, "epochs_to_fit_mean"] == 2.5
    assert summary.loc[0.0, "epochs_to_fit_sd"] == pytest.approx(0.7071, abs=1e-4)
    assert summary.loc[1.0, "fitted_runs"] == 1 and summary.loc[1.0, "n_seeds"] == 2
    assert summary.loc[1.0, "slowdown"] == pytest.approx(3 / 2.5)
    assert summary.loc[1.0, "train_acc_mean"] == pytest.approx(0.645)


def test_kind_names():
    assert kind_of("labels", 0.0) == "true_labels"
    assert kind_of("labels", 0.4) == "partial_labels"
    assert kind_of("labels", 1.0) == "random_labels"
    assert kind_of("gaussian", 0.0) == "gaussian"
