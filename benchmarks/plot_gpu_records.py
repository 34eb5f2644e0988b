"""Draw the README's paper-scale figures from a committed per-epoch CSV, with the workflow's own
figure code (hw5repro.figures), so the images in the README can always be regenerated:

    python benchmarks/plot_gpu_records.py \
        --epochs benchmarks/results/gpu/2234255-first-run/paper_sweep_epochs.csv \
        --out benchmarks/results/gpu/figures

The CSV has the format of results/tables/epochs.csv (one row per run and epoch). Writes
``test_error.png`` (the seed's Figure 4: test error against the fraction of random labels) and
``kept_vs_replaced.png`` (training accuracy on the kept vs the replaced labels) into ``--out``, or
the figures named by ``--figures`` (any of hw5repro.figures.FIGURES; for the study of
config/zhang.yaml: ``--figures zhang_figure1``).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from hw5repro.analysis import final_metrics, summarise
from hw5repro.figures import FIGURES, figures_job

README_FIGURES = ("test_error", "kept_vs_replaced")


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
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        final = final_metrics(epochs, args.threshold)
        final.to_csv(tmp / "final.csv", index=False)
        summarise(final).to_csv(tmp / "summary.csv", index=False)
        figures_job(args.epochs, tmp / "final.csv", tmp / "summary.csv", args.threshold, tmp)
        for name in args.figures:
            shutil.copyfile(tmp / f"{name}.png", out / f"{name}.png")
            written.append(out / f"{name}.png")
    print("\n".join(map(str, written)))
    return written


if __name__ == "__main__":
    main()
