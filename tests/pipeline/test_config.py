"""Configuration is validated once, before any job starts, with errors that name the key."""

import copy
import re

import pytest
import yaml
from snakemake.utils import validate

from helpers import REPO, SHARED_MNIST, planned_jobs, snakemake, write_config
from hw5repro.pipeline.config import (
    defaults,
    is_operational,
    job_config,
    key_table,
    load_schema,
    merge,
    readme_table,
    result_config,
    schema_keys,
    training_params,
)
from hw5repro.pipeline.config_check import values_left_as_text


def test_presets_are_valid(tmp_path):
    for preset in ("config", "smoke", "laptop", "zhang"):
        proc = snakemake(tmp_path, REPO / "config" / f"{preset}.yaml", "-n", "--quiet", "rules")
        assert proc.returncode == 0


@pytest.mark.parametrize(
    ("section", "values", "named"),
    [
        ("training", {"lr": -0.1}, "training.lr:"),
        ("training", {"device": "gpu"}, "training.device:"),
        ("training", {"conv_epilogue": "fused"}, "training.conv_epilogue:"),
        ("training", {"epochs": "many"}, "training.epochs:"),
        ("training", {"lr_typo": 0.1}, "training.lr_typo: unknown key"),
        ("experiment", {"label_ratios": [0.0, 1.5]}, "experiment.label_ratios[1]:"),
        ("experiment", {"input_corruptions": ["blur"]}, "experiment.input_corruptions[0]:"),
        ("model", {"width": 0}, "model.width:"),
        ("data", {"train_size": 70000}, "data.train_size:"),
    ],
)
def test_invalid_values_fail_before_any_job_naming_the_key(tmp_path, section, values, named):
    config = write_config(tmp_path / "config.yaml", **{section: values})
    proc = snakemake(tmp_path, config, "--cores", "1", check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "Error validating config file" in output
    assert named in output
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


# --- schema defaults, presets as overlays, the documented key table (pipeline.config) ------

SCHEMA = load_schema(REPO / "config" / "schema.yaml")


def load(name):
    return yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())


def leaves(config, prefix=""):
    for key, value in config.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_every_key_has_a_default_and_a_description():
    keys = dict(schema_keys(SCHEMA))
    assert "training.epochs" in keys and "resources.train.gpu" in keys
    for key, sub in keys.items():
        assert "default" in sub and sub.get("description"), key


def test_config_yaml_is_the_full_paper_configuration_and_the_defaults():
    config = load("config")
    assert dict(leaves(config)) == dict(leaves(defaults(SCHEMA)))
    validate(copy.deepcopy(config), str(REPO / "config" / "schema.yaml"))


@pytest.mark.parametrize("name", ["smoke", "laptop", "zhang"])
def test_presets_are_overlays_listing_only_what_differs(name):
    paper, overlay = dict(leaves(load("config"))), dict(leaves(load(name)))
    assert overlay and set(overlay) <= set(paper)
    same = [key for key, value in overlay.items() if paper[key] == value]
    assert same == [], f"{name}.yaml repeats the paper value of {same}"
    # filled with the schema's defaults, the overlay alone is the merged configuration
    filled = copy.deepcopy(load(name))
    validate(filled, str(REPO / "config" / "schema.yaml"), set_default=True)
    assert filled == merge(load("config"), load(name))


def test_readme_table_documents_exactly_the_schema_keys():
    text = (REPO / "config" / "README.md").read_text()
    table = readme_table(text)
    assert table == key_table(SCHEMA), "run: python -m hw5repro.pipeline.config --write"
    rows = re.findall(r"^\| `([\w.]+)` \| `(.*?)` \| (result|operational) \|", table, re.M)
    assert [key for key, _, _ in rows] == [key for key, _ in schema_keys(SCHEMA)]
    kinds = {key: kind for key, _, kind in rows}
    assert kinds["training.checkpoint_every"] == "operational"
    assert kinds["training.lr"] == "result" and kinds["training.cuda_graphs"] == "result"


def test_new_keys_and_their_bounds(tmp_path):
    keys = dict(schema_keys(SCHEMA))
    assert keys["training.cuda_graphs"]["default"] == "auto"
    assert keys["training.cuda_graphs"]["enum"] == ["auto", True, False]
    for values, named in [
        ({"checkpoint_every": 0}, "training.checkpoint_every:"),
        ({"cuda_graphs": "sometimes"}, "training.cuda_graphs:"),
    ]:
        config = write_config(tmp_path / "config.yaml", training=values)
        proc = snakemake(tmp_path, config, "-n", check=False)
        assert proc.returncode != 0 and named in proc.stdout + proc.stderr


def test_nested_command_line_values_fail_saying_they_arrived_as_text(tmp_path):
    """Snakemake reads a value nested in --config 'section={...}' without types ('20', not
    20): the schema's error names the key, and the workflow adds what to do instead."""
    config = write_config(tmp_path / "config.yaml")
    nested = [
        'training={"epochs": 20, "deterministic": True}',
        'experiment={"label_ratios": [0, 1]}',
    ]
    proc = snakemake(tmp_path, config, "-n", "--config", *nested, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Error validating config file" in output
    keys = ", ".join(
        ["experiment.label_ratios[0]", "experiment.label_ratios[1]"]
        + ["training.epochs", "training.deterministic"]
    )
    assert f"{keys}: a number, boolean, null or list given as text" in output
    assert "--configfile" in output and not (tmp_path / "results").exists()
    # a string nested there stays valid (the README's offline command), and a real typo gets
    # the schema's error alone
    (readme_value,) = re.findall(r"--config '(data=\{.*?\})'", (REPO / "README.md").read_text())
    local = readme_value.replace("/path/to/mnist", str(SHARED_MNIST))
    assert snakemake(tmp_path, config, "-n", "--config", local).returncode == 0
    proc = snakemake(tmp_path, config, "-n", "--config", 'training={"epochs": "many"}', check=False)
    assert proc.returncode != 0 and "given as text" not in proc.stdout + proc.stderr


def test_values_left_as_text_are_those_that_read_as_their_type():
    config = merge(
        defaults(SCHEMA),
        {
            "seed": "7",
            "data": {"test_size": "null", "train_size": "many"},
            "training": {"lr": "1e-2", "momentum": "0", "cuda_graphs": "True", "device": "cpu"},
        },
    )
    assert values_left_as_text(config, SCHEMA) == [
        "seed",
        "data.test_size",
        "training.lr",
        "training.momentum",
        "training.cuda_graphs",
    ]
    assert values_left_as_text(defaults(SCHEMA), SCHEMA) == []


def test_training_loss_is_gone_and_rejected(tmp_path):
    """training.loss was required but never read: it is no key any more (cross-entropy is the
    loss), and a configuration that still sets it fails naming it."""
    assert "training.loss" not in dict(schema_keys(SCHEMA))
    assert "loss" not in load("config")["training"]
    config = write_config(tmp_path / "config.yaml", training={"loss": "cross_entropy"})
    proc = snakemake(tmp_path, config, "-n", check=False)
    assert proc.returncode != 0 and "training.loss: unknown key" in proc.stdout + proc.stderr


def test_an_overlay_alone_plans_the_preset(tmp_path):
    """Without config/config.yaml beside it (a workdir elsewhere), the smoke overlay plus the
    schema's defaults plans the smoke workflow."""
    overlay = load("smoke")
    overlay["data"]["local_dir"] = str(SHARED_MNIST)
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    jobs = planned_jobs(tmp_path, path)
    assert jobs["train"] == 12 and jobs["fetch_mnist"] == 1 and jobs["report"] == 1


def test_result_and_operational_settings_split():
    config = merge(load("config"), load("smoke"))
    params = training_params(config)
    assert set(params) == {"model", "training"}
    assert params["training"]["lr"] == 0.1 and params["model"]["width"] == 0.125
    for key in ("checkpoint_every", "eval_batch_size"):
        assert is_operational(f"training.{key}") and key not in params["training"]
    assert is_operational("resources.train.gpu") and is_operational("data.local_dir")
    assert not is_operational("training.lr") and not is_operational("data.train_size")
    # the job gets both: the result settings it was planned with and the operational ones
    job = job_config(params, config)
    assert job["training"]["checkpoint_every"] == 2 and job["training"]["eval_batch_size"] == 500
    assert job["training"]["lr"] == 0.1 and job["model"] == params["model"]
    results = result_config(config)
    assert "resources" not in results and "local_dir" not in results["data"]
    assert set(results["training"]) == set(params["training"])
    assert "conv_epilogue" in params["training"] and "cuda_graphs" in params["training"]
    assert results["report"]["title"] == "HW5 reproduced (smoke preset)"
