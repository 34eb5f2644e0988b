"""Triton kernels of the training step (the convolutions' epilogues)."""
