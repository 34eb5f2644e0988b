"""Draw the README's paper-scale figures from a committed per-epoch CSV, with the workflow's own
figure code (hw5repro.reporting.figures), so the images in the README can always be regenerated:

    python benchmarks/plot_gpu_records.py \
        --epochs benchmarks/results/gpu/2234255-first-run/paper_sweep_epochs.csv \
        --out benchmarks/results/gpu/figures

The CSV has the format of results/tables/epochs.csv (one row per run and epoch). Writes
``test_error.png`` (the homework's Figure 4: test error against the fraction of random labels)
and ``clean_vs_mislabelled.png`` (training accuracy on the clean vs the mislabelled examples) into
``--out``, or the figures named by ``--figures`` (any of hw5repro.reporting.figures.FIGURES; for
the study of config/zhang.yaml: ``--figures zhang_figure1``).

Records written before the split by mislabelled examples (the project up to 62ab126: every GPU
record to date) split the training accuracy by the examples chosen for a random label
(``train_acc_kept``, ``train_acc_replaced``); about one replaced label in ten is the true class
again. From such a record the split is drawn as it was measured, as ``kept_vs_replaced.png``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from hw5repro.reporting.analysis import final_metrics, summarise
from hw5repro.reporting.figures import (
    CLEAN_VS_MISLABELLED,
    FIGURES,
    AccuracySplit,
    accuracy_split,
    figures_job,
)

README_FIGURES = ("test_error", "clean_vs_mislabelled")
#: The split of the records written before the mislabelled one (see above).
KEPT_VS_REPLACED = AccuracySplit(
    {
        "train_acc_kept": "labels kept",
        "train_acc_replaced": "labels replaced (1 in 10 by the true one)",
    },
    "(h) training accuracy: kept vs replaced labels",
)


def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", required=True, help="per-epoch CSV (results/tables format)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threshold", type=float, default=0.99)
    parser.add_argument("--figures", nargs="+", choices=FIGURES, default=list(README_FIGURES))
    args = parser.parse_args(argv)
    epochs = pd.read_csv(args.epochs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    old = not set(CLEAN_VS_MISLABELLED.columns) <= set(epochs.columns)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        final = final_metrics(epochs, args.threshold)
        final.to_csv(tmp / "final.csv", index=False)
        summarise(final).to_csv(tmp / "summary.csv", index=False)
        # (an old record's clean_vs_mislabelled is drawn empty; its own split is drawn below)
        columns = [*epochs.columns, *(CLEAN_VS_MISLABELLED.columns if old else [])]
        epochs.reindex(columns=columns).to_csv(tmp / "epochs.csv", index=False)
        figures_job(tmp / "epochs.csv", tmp / "final.csv", tmp / "summary.csv", args.threshold, tmp)
        if old:
            accuracy_split(epochs, tmp / "kept_vs_replaced", KEPT_VS_REPLACED)
        for name in args.figures:
            if old and name == "clean_vs_mislabelled":
                name = "kept_vs_replaced"
            shutil.copyfile(tmp / f"{name}.png", out / f"{name}.png")
            written.append(out / f"{name}.png")
    print("\n".join(map(str, written)))
    return written


if __name__ == "__main__":
    main()
