"""What makes Snakemake rerun a job here: file contents, not file times.

Snakemake compares an input newer than the job's outputs by its checksum when the input is under
``--max-checksum-file-size`` (1 MB by default), and reruns only if the content changed. Two kinds
of files escape that and are judged by their time alone, so that a copy of the project without
timestamps (``cp -r``, ``rsync`` without ``-t``) reruns whatever happens to be copied before its
inputs:

* inputs over the limit, the MNIST files: training depends on their checksums instead, a small
  manifest the data step writes beside them (:func:`write_manifest`);
* each rule's ``script:``, which Snakemake's ``code`` rerun trigger compares by time only: every
  rule lists its script among its inputs (``code()`` in workflow/rules/common.smk), where its
  content is compared, and the workflow profile (profiles/default) leaves the ``code`` trigger
  out (its only other use, the text of ``run:`` and ``shell:`` rules, does not occur here).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..mnist import FILES, sha256

#: The manifest's name in the data folder.
MANIFEST = "sha256.json"


def write_manifest(raw_dir: str | Path, path: str | Path) -> dict[str, str]:
    """Write ``path``: the SHA-256 of each MNIST file in ``raw_dir``, by name; returns them."""
    sums = {name: sha256(Path(raw_dir) / name) for name in FILES}
    Path(path).write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n")
    return sums
