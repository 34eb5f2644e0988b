"""Checkpoint files (hw5repro.training.checkpoint): atomic writes that reach the disk, and
fingerprints."""

import errno
import os

import pytest
import torch

from hw5repro.training import checkpoint


def test_a_checkpoint_reaches_the_disk_before_it_replaces_the_old_one(tmp_path, monkeypatch):
    events = []
    fsync, replace = checkpoint.os.fsync, checkpoint.os.replace
    monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: events.append("fsync") or fsync(fd))
    monkeypatch.setattr(
        checkpoint.os, "replace", lambda a, b: events.append("replace") or replace(a, b)
    )
    checkpoint.save_atomic({"x": torch.ones(3)}, tmp_path / "c.pt")
    assert events == ["fsync", "replace", "fsync"]  # the file, the rename, the folder
    assert torch.equal(torch.load(tmp_path / "c.pt", weights_only=True)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left


@pytest.mark.parametrize("err", ["EINVAL", "EIO"])
def test_a_folder_the_filesystem_cannot_sync_keeps_the_checkpoint(tmp_path, monkeypatch, err):
    """FUSE, 9p and some network filesystems refuse fsync on a folder (EINVAL): the checkpoint,
    synced and renamed, stands; a real I/O error still stops the job."""
    fsync = checkpoint.os.fsync

    def refuse_folders(fd):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(getattr(errno, err), os.strerror(getattr(errno, err)))
        fsync(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", refuse_folders)
    if err == "EIO":
        with pytest.raises(OSError, match="Input/output error"):
            checkpoint.save_atomic({"x": torch.ones(3)}, tmp_path / "c.pt")
        return
    checkpoint.save_atomic({"x": torch.ones(3)}, tmp_path / "c.pt")
    assert torch.equal(torch.load(tmp_path / "c.pt", weights_only=True)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_fingerprint_names_the_run_the_settings_and_the_data():
    base = checkpoint.fingerprint("labels_r0_s0", {"lr": 0.1, "epochs": 2}, "abc")
    assert len(base) == 64 and int(base, 16) >= 0
    assert checkpoint.fingerprint("labels_r0_s0", {"epochs": 2, "lr": 0.1}, "abc") == base
    assert checkpoint.fingerprint("labels_r0_s1", {"lr": 0.1, "epochs": 2}, "abc") != base
    assert checkpoint.fingerprint("labels_r0_s0", {"lr": 0.2, "epochs": 2}, "abc") != base
    assert checkpoint.fingerprint("labels_r0_s0", {"lr": 0.1, "epochs": 2}, "abd") != base


def test_to_cpu_copies_only_when_asked():
    x = torch.ones(2)
    nested = {"a": [x, (x, 3)], "b": "text"}
    same = checkpoint.to_cpu(nested)
    assert same["a"][0].data_ptr() == x.data_ptr() and same["b"] == "text"
    assert isinstance(same["a"][1], tuple) and same["a"][1][1] == 3
    copied = checkpoint.to_cpu(nested, copy=True)
    assert copied["a"][0].data_ptr() != x.data_ptr() and torch.equal(copied["a"][0], x)
