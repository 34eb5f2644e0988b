"""Snakemake started with --configfile twice stops before any job, naming both files."""

from __future__ import annotations

import re
import subprocess
import time

import yaml

from helpers import REPO, SHARED_MNIST, SNAKEMAKE


def test_a_repeated_configfile_stops_snakemake_at_once(tmp_path):
    overlay = tmp_path / "local.yaml"
    overlay.write_text("training: {epochs: 1}\n")
    cmd = [
        SNAKEMAKE, "-n", "-d", str(tmp_path / "work"),
        "--configfile", "config/smoke.yaml", "--configfile", str(overlay),
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - started
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert seconds < 5, seconds
    assert "--configfile was given 2 times" in output
    assert f"keeps only the last ({overlay})" in output
    assert "would silently drop config/smoke.yaml." in output
    assert f"--configfile config/smoke.yaml {overlay}" in output
    assert "Job stats" not in output and not (tmp_path / "work" / "results").exists()


def test_the_documented_overlay_form_applies_both_files(tmp_path):
    """``snakemake <targets> ... --configfile <preset> <overlay>``: the overlay's label ratios
    over the preset's seeds and corruptions, (1 + 3) x 2 training runs; the preset alone plans
    12, the paper configuration with the overlay 1."""
    overlay = tmp_path / "local.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {"experiment": {"label_ratios": [0.0]}, "data": {"local_dir": str(SHARED_MNIST)}}
        )
    )
    cmd = [
        SNAKEMAKE, "all", "-n", "--cores", "1", "-d", str(tmp_path / "work"),
        "--configfile", "config/smoke.yaml", str(overlay),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.MULTILINE))
    assert counts["train"] == "8", proc.stdout
