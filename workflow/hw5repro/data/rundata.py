"""The tensors one training run trains and is evaluated on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from .corruption import make_corrupted, to_float


@dataclass
class RunData:
    """Training and test tensors of one run (float images in [0, 1] or corrupted inputs)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    mislabelled: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @classmethod
    def of_run(cls, subset: dict, run) -> RunData:
        """The data ``run`` trains on: ``subset`` (``make_subset``) with the run's corruption."""
        corrupted = make_corrupted(subset, run)
        train_x, test_x = corrupted["train_x"], corrupted["test_x"]
        return cls(
            train_x=to_float(subset["train_x"]) if train_x is None else train_x,
            train_y=corrupted["labels"],
            mislabelled=corrupted["mislabelled"],
            test_x=to_float(subset["test_x"]) if test_x is None else test_x,
            test_y=subset["test_y"],
        )

    def to(self, device, memory_format) -> RunData:
        """The tensors on ``device``, the images in ``memory_format``."""
        images = {"memory_format": memory_format}
        return RunData(
            self.train_x.to(device, **images),
            self.train_y.to(device),
            self.mislabelled.to(device),
            self.test_x.to(device, **images),
            self.test_y.to(device),
        )

    def digest(self) -> str:
        """SHA-256 of every tensor's bytes: what a checkpoint's fingerprint names as its data."""
        h = hashlib.sha256()
        for name in ("train_x", "train_y", "mislabelled", "test_x", "test_y"):
            tensor = getattr(self, name).contiguous()
            h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            h.update(tensor.view(torch.uint8).numpy().tobytes())
        return h.hexdigest()
