"""Configuration is validated once, before any job starts, with errors that name the key."""

import pytest
import yaml

from conftest import REPO, snakemake, write_config


def test_presets_are_valid(tmp_path):
    for preset in ("config", "smoke", "laptop"):
        config = yaml.safe_load((REPO / "config" / f"{preset}.yaml").read_text())
        path = tmp_path / f"{preset}.yaml"
        path.write_text(yaml.safe_dump(config))
        proc = snakemake(tmp_path, path, "-n", "--quiet", "rules")
        assert proc.returncode == 0


@pytest.mark.parametrize(
    ("section", "values", "named"),
    [
        ("training", {"lr": -0.1}, "['training']['lr']"),
        ("training", {"device": "gpu"}, "['training']['device']"),
        ("training", {"epochs": "many"}, "['training']['epochs']"),
        ("training", {"lr_typo": 0.1}, "'lr_typo' was unexpected"),
        ("experiment", {"label_ratios": [0.0, 1.5]}, "['experiment']['label_ratios'][1]"),
        ("experiment", {"input_corruptions": ["blur"]}, "['experiment']['input_corruptions'][0]"),
        ("model", {"width": 0}, "['model']['width']"),
        ("data", {"train_size": 70000}, "['data']['train_size']"),
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
