"""An invalid configuration stops Snakemake in a few lines of output, before any job."""

from __future__ import annotations

import os
import subprocess

import yaml

from helpers import SNAKEMAKE, fresh_copy

#: The most lines of output a configuration error may take.
MAX_LINES = 15


def _dry_run(tmp_path, *args, **env):
    """``snakemake -n <args>`` at the root of a fresh copy of the checkout, as a user types it."""
    root = fresh_copy(tmp_path / "hw5repro")
    cmd = [SNAKEMAKE, "-n", *args]
    proc = subprocess.run(
        cmd, cwd=root, capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert not (root / "results").exists()
    return (proc.stdout + proc.stderr).splitlines()


def test_an_unknown_top_level_key_fails_in_a_few_lines(tmp_path):
    lines = _dry_run(tmp_path, "--config", "bogus=1")
    assert len(lines) <= MAX_LINES, "\n".join(lines)
    assert (
        "  bogus: unknown key; allowed here: "
        "seed, data, experiment, model, training, resources, report"
    ) in lines


def test_an_unknown_nested_key_of_an_overlay_names_the_nearest_key(tmp_path):
    overlay = tmp_path / "local.yaml"
    overlay.write_text(yaml.safe_dump({"training": {"epoch": 3}, "model": {"wdth": 0.5}}))
    lines = _dry_run(tmp_path, "--configfile", "config/smoke.yaml", str(overlay))
    assert len(lines) <= MAX_LINES, "\n".join(lines)
    assert "  training.epoch: unknown key; did you mean training.epochs?" in lines
    assert "  model.wdth: unknown key; did you mean model.width?" in lines


def test_the_full_validator_output_on_request(tmp_path):
    lines = _dry_run(tmp_path, "--config", "bogus=1", HW5_FULL_ERRORS="1")
    assert len(lines) > 100
    assert any("'bogus' was unexpected" in line for line in lines)
