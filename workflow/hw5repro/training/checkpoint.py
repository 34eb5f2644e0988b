"""Checkpoints of a training run: atomic, device-independent, and tied to what they belong to.

A checkpoint holds what continues a run exactly (weights, optimiser and RNG states, epoch, metrics)
and a *fingerprint*: a hash of the run's name, its result settings and the SHA-256 of its data.
One whose fingerprint differs from the job's is never resumed: it is set aside with a warning (or
removed, when it is the last one of a finished training, whose results were its outputs) and
training starts from epoch 0. Tensors are saved on the CPU and loaded with ``map_location="cpu"``,
so a checkpoint resumes on any device (the RNG setters accept only CPU byte tensors).
:class:`RunCheckpoint`, what the training loop uses, writes in a background thread.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

log = logging.getLogger(__name__)

#: What ``fsync`` of a folder raises where the filesystem does not support it.
UNSYNCABLE_FOLDER = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF}


def save_atomic(obj, path: str | Path) -> None:
    """torch.save to a synced temporary file renamed over ``path``: never a partial ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself
        finally:
            os.close(folder)
    except OSError as err:
        # some filesystems (FUSE, 9p, ...) cannot sync a folder: the file is as durable as they get
        if err.errno not in UNSYNCABLE_FOLDER:
            raise


def fingerprint(run: str, settings: dict, data_sha256: str | None = None) -> str:
    """A stable hash of the run, its result settings and its data's SHA-256 (``RunData.digest``)."""
    identity = {"run": run, "settings": settings, "data": data_sha256}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


class CheckpointError(RuntimeError):
    """A checkpoint could not be written (say, the disk is full); the one before it is kept."""


def to_cpu(obj, copy: bool = False):
    """``obj`` with every nested tensor on the CPU; ``copy``: copies even of CPU tensors (a
    snapshot that later in-place updates do not reach)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=copy)
    if isinstance(obj, dict):
        return {key: to_cpu(value, copy) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(value, copy) for value in obj)
    return obj


def load(path: str | Path | None, fingerprint: str | None, desc: str = "run") -> dict | None:
    """The checkpoint's state (CPU tensors) if ``path`` exists and belongs to ``fingerprint``;
    else None, with one of something else set aside as ``<name>.stale-<time>`` and an unreadable
    one as ``<name>.unreadable-<time>``."""
    if path is None or not Path(path).exists():
        return None
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, empty or not a checkpoint: torch raises many kinds
        first_line = (str(error).splitlines() or ["(no message)"])[0][:200]
        why = f"cannot be read ({type(error).__name__}: {first_line})"
        return _set_aside(path, "unreadable", why, desc)
    if state.get("fingerprint") == fingerprint:
        return state
    if state.get("final"):  # a finished training's: its results are the outputs being replaced
        path.unlink()
        log.info("%s: checkpoint %s of a finished training with other settings removed", desc, path)
        return None
    why = (
        f"was written for other settings or data (fingerprint {str(state.get('fingerprint'))[:12]}"
        f", this job {str(fingerprint)[:12]})"
    )
    return _set_aside(path, "stale", why, desc)


def _set_aside(path: Path, kind: str, why: str, desc: str) -> None:
    """Rename a checkpoint that cannot be resumed to ``<name>.<kind>-<time>``, with a warning."""
    name = f"{path.name}.{kind}-{time.strftime('%Y%m%dT%H%M%S')}"
    aside, n = path.with_name(name), 0
    while aside.exists():  # never over an earlier one set aside in the same second
        n += 1
        aside = path.with_name(f"{name}-{n}")
    os.replace(path, aside)
    log.warning(
        "%s: checkpoint %s %s; set aside as %s, training starts from epoch 0",
        desc,
        path,
        why,
        aside.name,
    )
    return None


def _global_rng(device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_global_rng(state: dict, device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class RunCheckpoint:
    """A run's checkpoint file (``path`` None: none), written in a background thread; as a context
    manager around the training loop, its exit (also by an exception) waits for the last write. A
    failed write raises :class:`CheckpointError` at the next :meth:`save` or at the exit, keeping
    the file before it. ``pause_seconds``: the loop's time in :meth:`save`; ``write_seconds``: the
    writer's."""

    def __init__(self, path, fingerprint, desc):
        self.path, self.fingerprint, self.desc = path, fingerprint, desc
        self.pause_seconds = self.write_seconds = 0.0
        self._writer: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def resume(self, model, optimizer, generator, device) -> tuple[int, list[dict]]:
        """Load the checkpoint into the run's objects and RNGs; (epoch, metrics) to go on from."""
        state = load(self.path, self.fingerprint, self.desc)
        if state is None:
            return 0, []
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["rng"]["perm"])
        _set_global_rng(state["rng"], device)
        epoch = int(state["epoch"])
        log.info("resumed %s from %s at epoch %d", self.desc, self.path, epoch)
        return epoch, list(state["metrics"])

    def save(self, model, optimizer, generator, device, epoch, metrics, final=False) -> None:
        """Copy the state to the host now; write it after the previous checkpoint (whose error
        this raises). ``final``: the training's last epoch."""
        started = time.perf_counter()
        self.wait()
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": {**_global_rng(device), "perm": generator.get_state()},
            "epoch": epoch,
            "metrics": list(metrics),
            "final": final,
        }
        snapshot = {**to_cpu(state, copy=True), "fingerprint": self.fingerprint}
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending = self._writer.submit(self._write, snapshot, epoch)
        self.pause_seconds += time.perf_counter() - started

    def _write(self, snapshot: dict, epoch: int) -> None:
        started = time.perf_counter()
        try:
            save_atomic(snapshot, self.path)
        except OSError as err:
            raise CheckpointError(
                f"{self.desc}: could not write the checkpoint of epoch {epoch} to {self.path} "
                f"({err}); the checkpoint before it is kept"
            ) from err
        self.write_seconds += time.perf_counter() - started

    def wait(self) -> None:
        """Return when the last checkpoint is on the disk; raise its error if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.wait()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None
