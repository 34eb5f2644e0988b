"""A copy of the project with its results that does not keep timestamps (``cp -r``, ``rsync``
without ``-t``) reruns nothing: the data's identity is its checksums, not its files' times."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time

from helpers import SNAKEMAKE, fresh_copy, write_config

#: A whole workflow in seconds: one run of one epoch on a small subset, every other rule too.
TINY = {
    "data": {"train_size": 256, "test_size": 100},
    "experiment": {"label_ratios": [0.0], "input_corruptions": [], "seeds": [0]},
    "training": {"epochs": 1, "device": "cpu"},
}


def _snakemake(root, config, *args):
    cmd = [SNAKEMAKE, "--cores", "2", *args, "--configfile", str(config)]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600, check=True)


def test_a_copy_whose_every_file_has_a_new_time_reruns_nothing(tmp_path):
    config = write_config(tmp_path / "config.yaml", **TINY)
    first = fresh_copy(tmp_path / "first")
    _snakemake(first, config)
    # cp -r: new files, each with the time it was written; here, to leave nothing to the order
    # of the copy, every file gets its own new time in a random order (the data files too).
    copy = tmp_path / "copy"
    shutil.copytree(first, copy, symlinks=True, copy_function=shutil.copyfile)
    files = [p for p in copy.rglob("*") if p.is_file() and not p.is_symlink()]
    random.Random(0).shuffle(files)
    now = time.time() + 10
    for i, path in enumerate(files):
        os.utime(path, (now + i, now + i))
    images = copy / "resources/mnist/train-images-idx3-ubyte"
    metrics = copy / "results/runs/labels_r0_s0/metrics.csv"
    assert images.stat().st_size > 1_000_000  # above Snakemake's checksum limit
    assert images.stat().st_mtime != metrics.stat().st_mtime
    dry = _snakemake(copy, config, "-n")
    assert "Nothing to be done" in dry.stdout, dry.stdout[-3000:]
    # (the images newer than the training's outputs, the worst case, is among the orders above
    # or forced here)
    os.utime(images, (now + len(files), now + len(files)))
    dry = _snakemake(copy, config, "-n")
    assert "Nothing to be done" in dry.stdout, dry.stdout[-3000:]
