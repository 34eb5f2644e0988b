"""The homework write-up's textbook training loop, kept as the baseline that the fast loop is
measured against and checked to be equivalent to: a DataLoader over host tensors, batches copied
to the device every step, float32, and a host sync per step (``loss.item()``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def seed_style_epoch(model, optimizer, x, y, batch_size, device, order=None) -> list[float]:
    """One epoch as the homework write-up trains: returns the per-step losses as Python floats.

    ``order`` (a permutation of the example indices) fixes the batch order, so the result can be
    compared step by step with :func:`hw5repro.training.steps.train_epoch`; without it the
    DataLoader shuffles as in the write-up.
    """
    dataset = TensorDataset(x, y)
    sampler = order.tolist() if order is not None else None
    # A private generator keeps the DataLoader from drawing from the global RNG (dropout's).
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=order is None,
        generator=torch.Generator(),
    )
    model.train()
    losses = []
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return losses
