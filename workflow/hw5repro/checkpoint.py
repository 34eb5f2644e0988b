"""Checkpoints of a training run: atomic, device-independent, and tied to what they belong to.

A checkpoint holds everything needed to continue a run exactly (weights, optimiser state, RNG
states, epoch, metrics so far) plus a *fingerprint*: a hash of the run's name, every
result-affecting setting and the SHA-256 of the data it was trained on. A checkpoint
whose fingerprint differs from the current job's (the configuration or the data changed since it
was written) is never resumed: it is set aside beside the original with a warning (or removed,
when it is the last checkpoint of a finished training, whose results were its outputs), and
training starts from epoch 0. :class:`RunCheckpoints` is what the training loop uses: one such
file per run, in a single run's format also for runs trained fused, so a run resumes fused or
alone.

Every tensor is moved to the CPU before saving and loaded with ``map_location="cpu"``, so a
checkpoint written on ``cuda:0`` resumes on the CPU, on ``cuda:0`` or on ``cuda:1`` alike
(``torch.set_rng_state`` and ``torch.cuda.set_rng_state`` only accept CPU byte tensors).

The training loop waits only for a copy of the state, not for the disk: :class:`RunCheckpoints`
copies every tensor to the host at the epoch's end and a background thread writes the files
(one checkpoint at a time), while the next epochs train. A paper-scale run's checkpoint is 72 MB
(weights and momentum), which ``torch.save`` and ``fsync`` take about 0.25 s to write on the
project's CPU machine, where six fused runs stopped the loop 1.8 s at every checkpoint when it
wrote them itself (``benchmarks/checkpoint_pause.py``): on a GPU, idle time.
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
    """torch.save to a temporary file in the same folder, flushed to the disk, then renamed over
    ``path``: after a crash of the job or of the node, ``path`` is the old file or the new one,
    never a partial one."""
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
        # Some filesystems (FUSE, 9p, some network ones) cannot sync a folder: the file itself is
        # on the disk and renamed, as durable as they make it; any other error is a real one.
        if err.errno not in UNSYNCABLE_FOLDER:
            raise


def fingerprint(run: str, settings: dict, data_sha256: str | None = None) -> str:
    """A stable hash of what a checkpoint belongs to: the run, its result-affecting settings
    (a JSON-able dict) and the SHA-256 of the data it trains on (``RunData.digest``)."""
    identity = {"run": run, "settings": settings, "data": data_sha256}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


class CheckpointError(RuntimeError):
    """A checkpoint could not be written (say, the disk is full); the one before it is kept."""


def to_cpu(obj, copy: bool = False):
    """The same nested structure with every tensor on the CPU; ``copy``: every tensor a copy,
    also those already on the CPU (a snapshot that later in-place updates do not reach)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=copy)
    if isinstance(obj, dict):
        return {key: to_cpu(value, copy) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(value, copy) for value in obj)
    return obj


def load(path: str | Path | None, fingerprint: str | None, desc: str = "run") -> dict | None:
    """The checkpoint's state (CPU tensors) if ``path`` exists and belongs to ``fingerprint``;
    a checkpoint of something else is renamed to ``<name>.stale-<time>``, one that cannot be
    read (say, cut short by a full disk) to ``<name>.unreadable-<time>``, and ``None`` returned."""
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
        log.info(
            "%s: checkpoint %s of a finished training with other settings or data removed; "
            "training starts from epoch 0",
            desc,
            path,
        )
        return None
    why = (
        f"was written for other settings or data (fingerprint {str(state.get('fingerprint'))[:12]}"
        f", this job {str(fingerprint)[:12]})"
    )
    return _set_aside(path, "stale", why, desc)


def _set_aside(path: Path, kind: str, why: str, desc: str) -> None:
    """Rename a checkpoint that cannot be resumed to ``<name>.<kind>-<time>`` (nothing is
    deleted), with a warning in the job's log."""
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


class RunCheckpoints:
    """The runs' checkpoints, one file per run in a single run's format (model, optimiser, RNG
    states, epoch, metrics so far, fingerprint): a run resumes fused or alone alike.

    :meth:`save` snapshots the runs' state on the host and writes it in a background thread;
    use the object as a context manager around the training loop, whose exit (also by an
    exception, such as a preemption) waits until the last checkpoint is on the disk. A failed
    write raises :class:`CheckpointError` at the next :meth:`save` or at the exit; the file it
    would have replaced is kept. ``pause_seconds`` is the loop's time in :meth:`save` (the
    snapshot, and any wait for the write before), ``write_seconds`` the writer's."""

    def __init__(self, paths, fingerprints, descs):
        self.paths, self.fingerprints, self.descs = paths, fingerprints, descs
        self.pause_seconds = self.write_seconds = 0.0
        self._writer: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def resume(self, runs, device) -> tuple[int, list[list[dict]]]:
        """Load every run's checkpoint into ``runs``; (epoch, metrics) to continue from."""
        fresh = 0, [[] for _ in self.paths]
        if all(path is None for path in self.paths):
            return fresh
        states = [
            load(p, f, d) for p, f, d in zip(self.paths, self.fingerprints, self.descs, strict=True)
        ]
        if all(s is None for s in states):
            return fresh
        if any(s is None for s in states) or len({int(s["epoch"]) for s in states}) > 1:
            log.warning(
                "runs trained together resume only when every run has a checkpoint of "
                "the same epoch; all of %s start from epoch 0",
                ", ".join(self.descs),
            )
            return fresh
        runs.load_run_states([{**s, "perm": s["rng"]["perm"]} for s in states])
        _set_global_rng(states[0]["rng"], device)
        epoch = int(states[0]["epoch"])
        for desc, path in zip(self.descs, self.paths, strict=True):
            log.info("resumed %s from %s at epoch %d", desc, path, epoch)
        return epoch, [list(s["metrics"]) for s in states]

    def save(self, runs, device, epoch: int, metrics: list[list[dict]], final=False) -> None:
        """Checkpoint every run at ``epoch`` (``final``: the training's last): the state is copied
        to the host now, the files are written in the background (after the previous
        checkpoint's, whose error this raises)."""
        started = time.perf_counter()
        self.wait()
        snapshots = []
        for k in range(len(self.paths)):
            state = runs.run_state(k)
            rng = {**_global_rng(device), "perm": state.pop("perm")}
            state = {
                **state,
                "rng": rng,
                "epoch": epoch,
                "metrics": list(metrics[k]),
                "final": final,
            }
            snapshots.append({**to_cpu(state, copy=True), "fingerprint": self.fingerprints[k]})
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending = self._writer.submit(self._write, snapshots, epoch)
        self.pause_seconds += time.perf_counter() - started

    def _write(self, snapshots: list[dict], epoch: int) -> None:
        started = time.perf_counter()
        for path, desc, snapshot in zip(self.paths, self.descs, snapshots, strict=True):
            try:
                save_atomic(snapshot, path)
            except OSError as err:
                raise CheckpointError(
                    f"{desc}: could not write the checkpoint of epoch {epoch} to {path} ({err}); "
                    "the checkpoint before it is kept"
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
