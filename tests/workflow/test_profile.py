"""`snakemake --cores 8 --profile slurm`, typed at the repository root of a fresh clone, finds the
project's SLURM profile (issue 11, item 1). No cluster needed: a dry run resolves the profile and
plans the jobs; tests/system/test_slurm.py runs the same command line on a real SLURM cluster."""

import subprocess

import yaml

from helpers import REPO, SNAKEMAKE, write_config


def test_slurm_link_points_at_the_profile():
    link = REPO / "slurm"
    assert link.is_symlink() and link.readlink().as_posix() == "profiles/slurm"
    profile = yaml.safe_load((link / "config.v8+.yaml").read_text())
    assert profile["executor"] == "slurm"


def test_profile_name_resolves_from_the_repository_root(tmp_path):
    config = write_config(tmp_path / "config.yaml")
    cmd = [SNAKEMAKE, "--cores", "8", "--profile", "slurm", "--configfile", str(config)]
    # --directory: the dry run's bookkeeping goes to tmp_path, not into the checkout.
    proc = subprocess.run(
        [*cmd, "--directory", str(tmp_path / "work"), "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert (
        "Using profiles slurm and workflow specific profile profiles/default for setting "
        "default command line arguments."
    ) in output
    # The whole smoke workflow is planned (which jobs go to SLURM: tests/system/test_slurm.py).
    assert output.count("\nrule train:") == 12 and "\nrule report:" in output

    # Elsewhere, the same name is not found: the link at the root is what makes it work.
    elsewhere = subprocess.run(
        [*cmd, "--dry-run"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert elsewhere.returncode == 1
    assert "profile directory given (slurm), but no profile.yaml" in elsewhere.stderr
