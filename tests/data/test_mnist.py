"""MNIST fetching from a local copy, checksum verification and the training subset."""

import gzip
import shutil
import socket

import pytest
import torch

from hw5repro.data import mnist

TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("raw")
    mnist.fetch(out, mnist_dir)
    return out


def test_fetch_from_gz_copy_verifies_and_decompresses(raw_dir):
    assert sorted(p.name for p in raw_dir.iterdir()) == sorted(mnist.FILES)
    for name in mnist.FILES:
        assert mnist.sha256(raw_dir / name) == mnist.SHA256[name]


def test_fetch_accepts_raw_files(raw_dir, tmp_path):
    out = tmp_path / "out"
    mnist.fetch(out, raw_dir)
    assert all(mnist.sha256(out / n) == mnist.SHA256[n] for n in mnist.FILES)


def test_corrupt_file_is_named_and_nothing_is_written(raw_dir, tmp_path):
    local = tmp_path / "local"
    shutil.copytree(raw_dir, local)
    target = local / "t10k-labels-idx1-ubyte"
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(mnist.DataError, match="t10k-labels-idx1-ubyte is corrupt"):
        mnist.fetch(out, local)
    assert list(out.iterdir()) == []  # no half-written output, staging folder removed


def test_truncated_gzip_is_named(mnist_dir, tmp_path):
    local = tmp_path / "local"
    shutil.copytree(mnist_dir, local)
    broken = local / "train-labels-idx1-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(mnist.DataError, match="train-labels-idx1-ubyte.gz"):
        mnist.fetch(tmp_path / "out", local)


def test_missing_file_is_named(raw_dir, tmp_path):
    local = tmp_path / "local"
    shutil.copytree(raw_dir, local)
    (local / "train-images-idx3-ubyte").unlink()
    with pytest.raises(mnist.DataError, match="train-images-idx3-ubyte"):
        mnist.fetch(tmp_path / "out", local)


def test_real_mnist_shapes_and_label_counts(raw_dir):
    x, y = mnist.load_split(raw_dir, train=True)
    assert x.shape == (60000, 28, 28) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == TRAIN_LABEL_COUNTS
    tx, ty = mnist.load_split(raw_dir, train=False)
    assert tx.shape == (10000, 28, 28) and ty.shape == (10000,)
    mean = x.float().div(255).mean().item()
    std = x.float().div(255).std().item()
    assert mean == pytest.approx(0.1307, abs=1e-4) and std == pytest.approx(0.3081, abs=1e-4)


def test_subset_is_drawn_once_without_replacement(raw_dir):
    subset = mnist.make_subset(raw_dir, 6000, None, seed=42)
    idx = subset["train_indices"]
    assert idx.shape == (6000,) and idx.unique().numel() == 6000
    assert int(idx.min()) >= 0 and int(idx.max()) < 60000
    x, y = mnist.load_split(raw_dir, train=True)
    assert torch.equal(subset["train_x"], x[idx]) and torch.equal(subset["train_y"], y[idx])
    assert subset["test_x"].shape[0] == 10000
    again = mnist.make_subset(raw_dir, 6000, 500, seed=42)
    assert torch.equal(again["train_indices"], idx)  # same seed, same subset
    assert again["test_y"].shape == (500,)
    other = mnist.make_subset(raw_dir, 6000, None, seed=43)
    assert not torch.equal(other["train_indices"], idx)
    # every class is represented roughly in proportion (a 10% draw)
    counts = torch.bincount(subset["train_y"], minlength=10).float()
    assert torch.allclose(counts / 6000, torch.tensor(TRAIN_LABEL_COUNTS) / 60000, atol=0.01)


def test_the_shared_gzipped_copy_reads_as_mnist(mnist_dir, tmp_path):
    """fetch() stages the gzipped local copy and read_idx parses it: the test split's 10,000
    labels, each digit about a tenth, and the raw file's bytes are the gzip's contents."""
    raw = mnist.fetch(tmp_path / "raw", local_dir=mnist_dir)
    labels_file = next(p for p in raw if p.name == "t10k-labels-idx1-ubyte")
    labels = torch.from_numpy(mnist.read_idx(labels_file, ndim=1).copy())
    assert labels.shape == (10_000,) and labels.dtype == torch.uint8
    counts = torch.bincount(labels.long(), minlength=10)
    assert len(counts) == 10 and 800 < counts.min() and counts.max() < 1200
    with gzip.open(mnist_dir / "t10k-labels-idx1-ubyte.gz", "rb") as fh:
        assert labels_file.read_bytes() == fh.read()


@pytest.fixture
def offline(monkeypatch):
    """No network: name resolution and connections fail as on a machine without access."""

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def no_connect(*args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(socket.socket, "connect", no_connect)


def test_offline_download_names_cause_and_local_dir(offline, tmp_path):
    out = tmp_path / "resources" / "mnist"
    with pytest.raises(mnist.DataError) as info:
        mnist.fetch(out)  # the real torchvision download, with the network unavailable
    message = str(info.value)
    first_line = message.splitlines()[0]
    assert first_line.startswith("MNIST download failed (RuntimeError: ")
    assert "Name or service not known" in first_line
    assert "data.local_dir" in first_line and "local_dir: /path/to/mnist" in first_line
    for name in mnist.FILES:
        assert name in first_line
    # Nothing partial: no IDX file, no .gz, no staging or download folder.
    assert list(out.iterdir()) == []


def test_check_local_dir_names_folder_and_missing_file(raw_dir, tmp_path):
    mnist.check_local_dir(None)  # download: nothing to check
    mnist.check_local_dir(raw_dir)  # raw files
    local = tmp_path / "local"
    shutil.copytree(raw_dir, local)
    (local / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(mnist.DataError) as info:
        mnist.check_local_dir(local)
    message = str(info.value)
    assert f"data.local_dir={local} is incomplete" in message
    assert "t10k-images-idx3-ubyte (or t10k-images-idx3-ubyte.gz) not found" in message
    assert "train-images-idx3-ubyte" not in message  # only the missing file is named
    with pytest.raises(mnist.DataError, match=rf"data.local_dir={tmp_path / 'nowhere'}: no such"):
        mnist.check_local_dir(tmp_path / "nowhere")


def test_malformed_or_truncated_idx_files_are_named(tmp_path):
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 12)  # says 3-d, labels are 1-d
    with pytest.raises(mnist.DataError, match=r"cannot parse MNIST file .*t10k-labels.*1-d"):
        mnist.read_idx(bad, 1)
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05" + b"\x01\x02")  # 5 labels, 2 bytes
    with pytest.raises(mnist.DataError, match=r"2 bytes of data for shape \(5,\)"):
        mnist.read_idx(bad, 1)
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x03" + b"\x07\x08\x09")
    assert mnist.read_idx(bad, 1).tolist() == [7, 8, 9]


def test_the_snakefile_parses_without_importing_torch():
    """common.smk imports hw5repro.data.mnist when the workflow is parsed; torch loads only in jobs
    (about 2-4 s of start-up saved on every snakemake call)."""
    import subprocess
    import sys

    code = "import sys, hw5repro.data.mnist; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
