"""The whole smoke workflow in a temporary folder, and the paper-scale job list."""

import json

import pandas as pd
import pytest
import torch

from helpers import REPO, planned_jobs
from hw5repro.data.experiment import runs_from_config
from hw5repro.reporting.figures import FIGURES
from hw5repro.training.loop import METRIC_COLUMNS

pytestmark = pytest.mark.slow


def _smoke_config(workdir):
    import yaml

    return yaml.safe_load((workdir / "config.yaml").read_text())


def test_smoke_workflow_writes_every_promised_output(smoke_run):
    results = smoke_run / "results"
    config = _smoke_config(smoke_run)
    runs = runs_from_config(config)
    assert len(runs) == 12  # 3 label ratios + 3 input corruptions, 2 seeds
    for run in runs:
        folder = results / "runs" / run.name
        metrics = pd.read_csv(folder / "metrics.csv")
        assert list(metrics.columns) == METRIC_COLUMNS
        assert metrics["epoch"].tolist() == list(range(1, config["training"]["epochs"] + 1))
        assert metrics[["train_loss", "train_acc", "test_acc"]].notna().all().all()
        assert (folder / "model.pt").stat().st_size > 0
        # kept once the job completed: a job run again for this run trains nothing
        saved = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
        assert saved["epoch"] == config["training"]["epochs"] and saved["final"]
        info = json.loads((folder / "run.json").read_text())
        assert info["run_id"] == run.name and info["device"] == "cpu"
        assert info["job"] == run.name and info["conv_epilogue"] == "torch"
        assert info["fingerprint"] == saved["fingerprint"]
        assert info["parameters"] == 140_766 and info["train_images"] == 512
        log = (results / "logs" / "train" / f"{run.name}.log").read_text()
        assert log.count(f"{run.name} epoch ") == config["training"]["epochs"]  # a line an epoch
        bench = pd.read_csv(results / "benchmarks" / "train" / f"{run.name}.tsv", sep="\t")
        assert bench["s"].iloc[0] > 0
    final = pd.read_csv(results / "tables" / "final_metrics.csv")
    assert sorted(final["run_id"]) == sorted(r.name for r in runs)
    summary = pd.read_csv(results / "tables" / "summary.csv")
    assert (summary["n_seeds"] == 2).all() and len(summary) == 6
    facts = json.loads((results / "tables" / "memorisation.json").read_text())
    assert facts["random_labels"]["runs"] == 2 and facts["train_size"] == 512
    for name in FIGURES:
        for suffix in (".png", ".pdf"):
            assert (results / "figures" / f"{name}{suffix}").stat().st_size > 5_000


def test_default_config_lists_one_training_job_per_ratio(tmp_path):
    counts = planned_jobs(tmp_path, REPO / "config" / "config.yaml", "--cores", "8")
    assert counts["train"] == 6 and counts["fetch_mnist"] == 1
    assert counts["memorisation_figures"] == 1 and counts["memorisation_tables"] == 1
