"""Corrupted training sets of Zhang et al. (2017), made deterministically from the subset.

Label noise at ratio r: round(r * N) examples, chosen with a fixed seed, get a label drawn
uniformly from the 10 classes; ``mislabelled`` marks those whose label is no longer their class.
For one seed the choices and draws come from one stream independent of r, so the corrupted set at
a smaller ratio is contained in the one at a larger ratio. Input corruptions keep the true labels;
test labels never change.
"""

from __future__ import annotations

import torch

from .experiment import INPUT_CORRUPTIONS, LABEL_NOISE, Run, stream_seed

NUM_CLASSES = 10


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1], as torchvision's ToTensor."""
    return images.unsqueeze(1).float().div_(255.0)


def noisy_labels(
    labels: torch.Tensor, ratio: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels with round(ratio * N) entries redrawn uniformly, and the mask of the changed ones."""
    n = labels.shape[0]
    generator = torch.Generator().manual_seed(stream_seed(seed, LABEL_NOISE))
    order = torch.randperm(n, generator=generator)
    draws = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    chosen = order[: round(ratio * n)]
    noisy = labels.clone()
    noisy[chosen] = draws[chosen]
    return noisy, noisy != labels


def corrupt_inputs(kind: str, train_x: torch.Tensor, test_x: torch.Tensor, seed: int) -> dict:
    """Corrupted float training inputs, and test inputs where the corruption applies to them
    (``None``: the test set keeps its images); shuffled pixels also record their permutation."""
    generator = torch.Generator().manual_seed(stream_seed(seed, kind))
    flat = train_x.flatten(1)
    if kind == "shuffled_pixels":  # one permutation, shared by every train and test image
        perm = torch.randperm(flat.shape[1], generator=generator)
        return {
            "train_x": flat[:, perm].view_as(train_x),
            "test_x": test_x.flatten(1)[:, perm].view_as(test_x),
            "permutation": perm,
        }
    if kind == "random_pixels":  # an independent permutation per training image
        perms = torch.rand(flat.shape, generator=generator).argsort(dim=1)
        return {"train_x": flat.gather(1, perms).view_as(train_x), "test_x": None}
    if kind == "gaussian":  # i.i.d. Gaussian pixels with the training set's mean and variance
        mean, std = flat.mean(), flat.std()
        noise = torch.randn(flat.shape, generator=generator) * std + mean
        return {"train_x": noise.view_as(train_x), "test_x": None}
    raise ValueError(f"unknown input corruption {kind!r}; expected one of {INPUT_CORRUPTIONS}")


def make_corrupted(subset: dict, run: Run) -> dict:
    """One run's labels, their ``mislabelled`` mask and (for input corruptions) the corrupted
    inputs; ``None``: the clean subset's tensor."""
    y_true = subset["train_y"]
    if run.corruption == LABEL_NOISE:
        labels, mask = noisy_labels(y_true, run.ratio, run.seed)
        inputs = {"train_x": None, "test_x": None}
    else:
        labels, mask = y_true.clone(), torch.zeros_like(y_true, dtype=torch.bool)
        inputs = corrupt_inputs(
            run.corruption, to_float(subset["train_x"]), to_float(subset["test_x"]), run.seed
        )
    return {"run": run.name, "labels": labels, "mislabelled": mask, **inputs}
