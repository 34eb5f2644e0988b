"""After a complete smoke run, Snakemake reruns exactly what a change affects."""

import subprocess

import pytest
import yaml

from helpers import (
    PROBLEM_RULES,
    REPO,
    SNAKEMAKE,
    edited,
    fresh_copy,
    planned_jobs,
    write_config,
)

# An edit of the checkout (helpers.edited) holds the checkout lock exclusively, every Snakemake
# run of the tests holds it shared: no edit meets another test's run, also under pytest-xdist.
pytestmark = pytest.mark.slow

DATA_RULES = {"fetch_mnist"}
PACKAGE = REPO / "workflow" / "hw5repro"
#: Every rule whose script imports hw5repro.plotting (through figures.py or a problem module).
FIGURE_RULES = {"memorisation_figures", *PROBLEM_RULES}
#: What follows any figure or table: provenance (its inputs), the report and the target rule.
REPORT_RULES = {"provenance", "report", "all"}


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


@pytest.mark.parametrize(
    "values",
    [{"checkpoint_every": 3}, {"eval_batch_size": 128}],
    ids=lambda v: next(iter(v)),
)
def test_operational_training_key_reruns_nothing(smoke_run, tmp_path, values):
    assert planned_jobs(smoke_run, changed_config(smoke_run, tmp_path, "training", **values)) == {}


def test_resources_rerun_nothing(smoke_run, tmp_path):
    config = changed_config(
        smoke_run, tmp_path, "resources", default={"mem_mb": 3500, "runtime": 12}
    )
    assert planned_jobs(smoke_run, config) == {}


def test_report_title_reruns_only_the_report(smoke_run, tmp_path):
    config = changed_config(smoke_run, tmp_path, "report", title="Another title")
    assert set(planned_jobs(smoke_run, config)) == REPORT_RULES


def test_new_ratio_runs_only_its_jobs_and_downstream(smoke_run, tmp_path):
    config = changed_config(smoke_run, tmp_path, "experiment", label_ratios=[0.0, 0.5, 1.0, 0.8])
    jobs = planned_jobs(smoke_run, config)
    print("ratio 0.8 added:", jobs)
    assert jobs["train"] == 2  # one per seed
    assert "fetch_mnist" not in jobs
    assert jobs["memorisation_tables"] == 1 and jobs["memorisation_figures"] == 1


def test_editing_plotting_code_reruns_only_figures_and_report(smoke_run):
    """plotting.py is imported by figures.py and the problem modules, not by the rules' scripts
    directly: the computed dependencies follow the imports transitively."""
    with edited(PACKAGE / "plotting.py"):
        jobs = planned_jobs(smoke_run, smoke_run / "config.yaml")
    print("plotting.py edited:", jobs)
    assert jobs == dict.fromkeys(FIGURE_RULES | REPORT_RULES, 1)


def test_editing_the_figures_module_reruns_its_rule_and_the_report(smoke_run):
    with edited(PACKAGE / "reporting" / "figures.py"):
        jobs = planned_jobs(smoke_run, smoke_run / "config.yaml")
    assert jobs == dict.fromkeys({"memorisation_figures"} | REPORT_RULES, 1)


def test_editing_experiment_reruns_what_imports_it(smoke_run):
    """data/experiment.py is imported by the training job and loop (relative imports from
    another sub-package) and by analysis (and through it by figures): every training job and
    what follows reruns; MNIST and problems 1-5 do not."""
    with edited(PACKAGE / "data" / "experiment.py"):
        jobs = planned_jobs(smoke_run, smoke_run / "config.yaml")
    print("experiment.py edited:", jobs)
    assert jobs == {
        "train": 12,
        "memorisation_tables": 1,
        "memorisation_figures": 1,
        **dict.fromkeys(REPORT_RULES, 1),
    }


TRAINING_AND_AFTER = {"train": 12, "memorisation_tables": 1, "memorisation_figures": 1}


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        # imported only inside a function of kernels/epilogues.py, by training alone
        ("kernels/triton_kernels.py", TRAINING_AND_AFTER),
        # a sub-package's __init__ runs with every module of it
        ("training/__init__.py", TRAINING_AND_AFTER),
        ("data/mnist.py", {"fetch_mnist": 1, **TRAINING_AND_AFTER}),
        ("reporting/analysis.py", {"memorisation_tables": 1, "memorisation_figures": 1}),
        ("problems/momentum.py", {"problem_momentum": 1}),
        ("reporting/render.py", {}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_editing_a_module_reruns_exactly_the_rules_that_import_it(smoke_run, module, expected):
    """Each rule's code inputs are its script's imports followed through sub-packages and
    relative imports (hw5repro.pipeline.codedeps): editing a module reruns the rules whose
    scripts import it, directly or not, and what reads their outputs (provenance, which reads
    every job's benchmark, the report and the target rule), nothing else."""
    with edited(PACKAGE / module):
        jobs = planned_jobs(smoke_run, smoke_run / "config.yaml")
    print(module, "edited:", jobs)
    if module == "reporting/render.py":  # the report alone: no other job ran
        assert set(jobs) - {"provenance"} == {"report", "all"}
        return
    assert jobs == {**expected, **dict.fromkeys(REPORT_RULES, 1)}


def test_provenance_reads_the_benchmarks_it_declares(smoke_run):
    """The wall times provenance states come from declared inputs: a newer benchmark of a job
    reruns provenance (and the report), nothing else."""
    with edited(smoke_run / "results" / "benchmarks" / "fetch_mnist.tsv"):
        jobs = planned_jobs(smoke_run, smoke_run / "config.yaml")
    assert jobs == dict.fromkeys(REPORT_RULES, 1)


def test_a_moved_checkout_with_its_results_reruns_nothing(tmp_path):
    """The checkout's files that rules read (code, templates) are inputs relative to the working
    directory: moving or renaming the checkout with its results reruns nothing (Snakemake
    compares each job's set of input paths with the recorded one)."""
    target = "results/problems/momentum/results.json"
    config = write_config(tmp_path / "config.yaml")

    def user_command(checkout, *args):
        # as a user types it, at the root of the checkout (targets before --configfile)
        cmd = [SNAKEMAKE, target, "--cores", "1", *args, "--configfile", str(config)]
        return subprocess.run(cmd, cwd=checkout, capture_output=True, text=True, check=True)

    first = fresh_copy(tmp_path / "first")
    user_command(first)
    moved = first.rename(tmp_path / "moved")
    assert "Nothing to be done" in user_command(moved, "-n").stdout
