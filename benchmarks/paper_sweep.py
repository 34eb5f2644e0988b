"""The paper-scale training sweep in one process, timed (on a GPU, without Snakemake).

Reads the experiment from a config file (default config/config.yaml: 6 label ratios x 150 epochs x
6,000 images), trains every label-noise run with the same code as the workflow's `train` rule and
writes `epochs.csv` (the format of results/tables/epochs.csv) and `sweep.json` (timings, device).

    python benchmarks/paper_sweep.py --mnist .mnist --out benchmarks/results/gpu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from hw5repro.data.experiment import LABEL_NOISE, runs_from_config
from hw5repro.data.mnist import fetch, make_subset
from hw5repro.data.rundata import RunData
from hw5repro.pipeline.config import defaults, load_schema, merge
from hw5repro.reporting.analysis import keyed_by_run
from hw5repro.training.device import device_name
from hw5repro.training.loop import train
from hw5repro.training.model import CONV_EPILOGUES
from hw5repro.training.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--mnist", help="folder with the four MNIST IDX files (default: download)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, help="override training.epochs")
    parser.add_argument("--width", type=float, help="override model.width")
    parser.add_argument("--train-size", type=int, help="override data.train_size")
    parser.add_argument("--test-size", type=int, help="override data.test_size")
    parser.add_argument("--device", help="override training.device")
    parser.add_argument(
        "--conv-epilogue",
        choices=["auto", *CONV_EPILOGUES],
        help="override training.conv_epilogue",
    )
    args = parser.parse_args(argv)

    paper = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config = merge(defaults(load_schema()), paper)
    config = merge(config, yaml.safe_load(Path(args.config).read_text()))  # a preset overlay
    for key, section, value in [
        ("epochs", "training", args.epochs),
        ("width", "model", args.width),
        ("train_size", "data", args.train_size),
        ("test_size", "data", args.test_size),
        ("device", "training", args.device),
        ("conv_epilogue", "training", args.conv_epilogue),
    ]:
        if value is not None:
            config[section][key] = value
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "mnist-raw"
    fetch(raw, args.mnist)
    data = config["data"]
    subset = make_subset(raw, data["train_size"], data["test_size"], config["seed"])
    settings = Settings.from_config(config)
    device = torch.device(settings.device)

    frames, timings = [], {}
    sweep_start = time.perf_counter()
    for run in runs_from_config(config):
        if run.corruption != LABEL_NOISE:
            continue
        run_data = RunData.of_run(subset, run)
        metrics, _, info = train(run_data, settings, run.seed, desc=run.name)
        frame = keyed_by_run(pd.DataFrame(metrics), run)
        frames.append(frame)
        timings[run.name] = {
            "wall_seconds": info["wall_seconds"],
            "train_seconds": float(frame["epoch_seconds"].sum()),
            "eval_seconds": float(frame["eval_seconds"].sum()),
            "final_train_acc": metrics[-1]["train_acc"],
            "final_test_acc": metrics[-1]["test_acc"],
        }
    total = time.perf_counter() - sweep_start
    pd.concat(frames, ignore_index=True).to_csv(out / "epochs.csv", index=False)
    for path in raw.iterdir():
        path.unlink()
    raw.rmdir()
    record = {
        "benchmark": "paper_sweep",
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "precision": info["precision"],
        "channels_last": info["channels_last"],
        "cuda_graphs": info["cuda_graphs"],
        "conv_epilogue": info["conv_epilogue"],
        "config": {k: config[k] for k in ("seed", "data", "experiment", "model", "training")},
        "sweep_wall_seconds": total,
        "sweep_train_seconds": sum(t["train_seconds"] for t in timings.values()),
        "sweep_eval_seconds": sum(t["eval_seconds"] for t in timings.values()),
        "runs": timings,
    }
    (out / "sweep.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "config"}, indent=2))
    return record


if __name__ == "__main__":
    main()
