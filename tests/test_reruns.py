"""After a complete smoke run, Snakemake reruns exactly what a change affects."""

import pytest
import yaml

from conftest import REPO, edited, planned_jobs

pytestmark = pytest.mark.slow

DATA_RULES = {"fetch_mnist", "mnist_subset", "corrupt_dataset"}


def changed_config(smoke_run, tmp_path, section, **values):
    config = yaml.safe_load((smoke_run / "config.yaml").read_text())
    config[section].update(values)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_complete_run_has_nothing_to_do(smoke_run):
    assert planned_jobs(smoke_run, smoke_run / "config.yaml") == {}


def test_training_parameter_reruns_training_and_downstream_not_data(smoke_run, tmp_path):
    jobs = planned_jobs(smoke_run, changed_config(smoke_run, tmp_path, "training", lr=0.05))
    print("lr changed:", jobs)
    assert jobs["train"] == 12
    assert jobs["memorisation_tables"] == 1 and jobs["memorisation_figures"] == 1
    assert not DATA_RULES & set(jobs)
    assert not any(rule.startswith("problem_") for rule in jobs)


def test_new_ratio_runs_only_its_jobs_and_downstream(smoke_run, tmp_path):
    config = changed_config(smoke_run, tmp_path, "experiment", label_ratios=[0.0, 0.5, 1.0, 0.8])
    jobs = planned_jobs(smoke_run, config)
    print("ratio 0.8 added:", jobs)
    assert jobs["train"] == 2 and jobs["corrupt_dataset"] == 2  # one per seed
    assert "fetch_mnist" not in jobs and "mnist_subset" not in jobs
    assert jobs["memorisation_tables"] == 1 and jobs["memorisation_figures"] == 1


def test_editing_plotting_code_reruns_only_figures_and_report(smoke_run):
    with edited(REPO / "workflow" / "hw5repro" / "figures.py"):
        jobs = planned_jobs(smoke_run, smoke_run / "config.yaml")
    print("figures.py edited:", jobs)
    assert jobs.pop("memorisation_figures") == 1
    assert "report" in jobs and set(jobs) <= {"provenance", "report", "report_pdf", "all"}, jobs
