"""MNIST: fetch the four IDX files (download or local copy), verify them, load them as tensors."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.error import URLError

if TYPE_CHECKING:  # torch loads lazily: the Snakefile imports this module when it is parsed
    import torch

log = logging.getLogger(__name__)

#: SHA-256 of the four files after decompression.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
FILES = tuple(SHA256)
#: The verified SHA-256, which training depends on (by content: an untimed copy reruns nothing).
MANIFEST = "sha256.json"


class DataError(RuntimeError):
    """A data file is missing or corrupt."""


def sha256(path: str | Path) -> str:
    """SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_decompressed(source: Path, target: Path) -> None:
    opener = gzip.open if source.suffix == ".gz" else open
    try:
        with opener(source, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read MNIST file {source}: {err}") from err


def _source_file(local_dir: Path, name: str) -> Path | None:
    """``name`` or ``name.gz`` in ``local_dir``, whichever exists (raw first)."""
    return next((c for c in (local_dir / name, local_dir / f"{name}.gz") if c.is_file()), None)


def check_local_dir(local_dir: str | Path | None) -> None:
    """Fail when ``data.local_dir`` is set but lacks any of the four IDX files (no checksums)."""
    if local_dir is None:
        return
    folder = Path(local_dir)
    if not folder.is_dir():
        raise DataError(
            f"data.local_dir={local_dir}: no such folder ({folder.resolve()}). "
            f"It must hold the four MNIST IDX files ({', '.join(FILES)}; gzipped or raw); "
            "or set data.local_dir: null to download them."
        )
    missing = [name for name in FILES if _source_file(folder, name) is None]
    if missing:
        raise DataError(
            f"data.local_dir={local_dir} is incomplete: "
            + ", ".join(f"{name} (or {name}.gz)" for name in missing)
            + f" not found in {folder.resolve()}"
        )


def _stage_local(local_dir: Path, staging: Path) -> None:
    for name in FILES:
        source = _source_file(local_dir, name)
        if source is None:
            raise DataError(
                f"MNIST file {name} (or {name}.gz) not found in data.local_dir={local_dir}"
            )
        _copy_decompressed(source, staging / name)


def _download_failed(err: BaseException) -> DataError:
    """The download error with its cause and the way around it (data.local_dir)."""
    cause = str(err).strip() or type(err).__name__
    # torchvision lists every mirror's error; the innermost reason is the useful part.
    reasons = re.findall(r"<urlopen error (.*?)>", cause)
    reason = reasons[-1] if reasons else cause.splitlines()[-1]
    return DataError(
        f"MNIST download failed ({type(err).__name__}: {reason}). Is this machine offline? "
        "Without network access, copy the four MNIST IDX files "
        f"({', '.join(FILES)}; gzipped or raw, names as listed) into a folder and point "
        "data.local_dir at it (`local_dir: /path/to/mnist` in the `data` section of your "
        "config file, e.g. a copy of config/smoke.yaml); the files are verified by SHA-256.\n"
        f"Full download error:\n{cause}"
    )


def _stage_download(staging: Path) -> None:
    from torchvision.datasets import MNIST

    try:
        MNIST(root=str(staging / "download"), train=True, download=True)
        MNIST(root=str(staging / "download"), train=False, download=True)
    except (RuntimeError, URLError, OSError) as err:
        raise _download_failed(err) from err
    raw = staging / "download" / "MNIST" / "raw"
    for name in FILES:
        shutil.move(raw / name, staging / name)
    shutil.rmtree(staging / "download")


def fetch(out_dir: str | Path, local_dir: str | Path | None = None) -> list[Path]:
    """Fetch MNIST's IDX files (``local_dir``'s or downloaded) to ``out_dir``: verified, or none."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".staging-") as tmp:
        staging = Path(tmp)
        if local_dir is not None:
            log.info("copying MNIST from %s", local_dir)
            _stage_local(Path(local_dir), staging)
        else:
            log.info("downloading MNIST with torchvision")
            _stage_download(staging)
        for name in FILES:
            got = sha256(staging / name)
            if got != SHA256[name]:
                raise DataError(
                    f"MNIST file {name} is corrupt: SHA-256 {got} != expected {SHA256[name]}"
                    + (f" (source folder {local_dir})" if local_dir else "")
                )
        for name in FILES:
            os.replace(staging / name, out_dir / name)
    return [out_dir / name for name in FILES]


def write_manifest(path: str | Path) -> None:
    """Write the manifest of files that :func:`fetch` verified."""
    Path(path).write_text(json.dumps(SHA256, indent=2, sort_keys=True) + "\n")


def read_idx(path: Path, ndim: int):
    """An IDX file of unsigned bytes as a numpy array; a malformed one is a DataError."""
    import numpy as np

    data = Path(path).read_bytes()
    header = 4 + 4 * ndim
    if len(data) < header or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise DataError(
            f"cannot parse MNIST file {path}: not an IDX file of {ndim}-d unsigned bytes"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    body = np.frombuffer(data, dtype=np.uint8, offset=header)
    if body.size != int(np.prod(shape)):
        raise DataError(
            f"cannot parse MNIST file {path}: {body.size} bytes of data for shape {shape}"
        )
    return body.reshape(shape)


def load_split(raw_dir: str | Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one split, read from verified IDX files."""
    import torch

    prefix = "train" if train else "t10k"
    raw_dir = Path(raw_dir)
    images_path = raw_dir / f"{prefix}-images-idx3-ubyte"
    labels_path = raw_dir / f"{prefix}-labels-idx1-ubyte"
    try:
        images = torch.from_numpy(read_idx(images_path, 3).copy())
        labels = torch.from_numpy(read_idx(labels_path, 1).astype("int64"))
    except OSError as err:
        raise DataError(f"cannot parse MNIST file in {raw_dir}: {err}") from err
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images_path} and {labels_path} hold different numbers of examples")
    return images, labels


def make_subset(raw_dir: str | Path, train_size: int, test_size: int | None, seed: int) -> dict:
    """``train_size`` training images drawn with ``seed``; the first ``test_size`` (None: all)."""
    import torch

    train_x, train_y = load_split(raw_dir, train=True)
    test_x, test_y = load_split(raw_dir, train=False)
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(train_x.shape[0], generator=generator)[:train_size]
    test_n = test_x.shape[0] if test_size is None else test_size
    return {
        "train_indices": indices,
        "train_x": train_x[indices].clone(),
        "train_y": train_y[indices].clone(),
        "test_x": test_x[:test_n].clone(),
        "test_y": test_y[:test_n].clone(),
    }
