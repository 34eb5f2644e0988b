"""How long the training loop stops for a checkpoint: written in the loop, as it was until the
background writer, against copied to the host in the loop and written in the background
(``hw5repro.checkpoint.RunCheckpoints``, what the workflow's jobs do).

    python benchmarks/checkpoint_pause.py --runs 6 --out RECORD.json

K paper-scale runs (``--width 1``) in one job, as ``training.runs_per_job: K`` trains them (K > 1:
fused in one network), each with the momentum buffers of one SGD step taken; their checkpoints go
to ``--dir`` (default: a temporary folder beside the record, on the disk the workflow's
``results/`` would use). For each of ``--repeats`` checkpoints it times
- ``inline``: snapshot and write, the loop waiting for both (the old behaviour);
- ``background``: the loop's pause (the snapshot) and, separately, the writer's seconds.
The paper-scale workflow writes a checkpoint every 10 of 150 epochs: 14 per job (none after the
last epoch, whose results the job writes at once).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from records import record_header

from hw5repro.checkpoint import RunCheckpoints
from hw5repro.device import resolve_device
from hw5repro.model import count_parameters
from hw5repro.runset import make_runs
from hw5repro.training import RunData, Settings, resolve_settings

#: checkpoints per paper-scale job (150 epochs, every 10, none after the last)
PAPER_CHECKPOINTS_PER_JOB = 14


def runs_with_momentum(k: int, width: float, device: torch.device):
    """K runs as one training job holds them, after one SGD step (momentum buffers exist)."""
    paper = dict(epochs=150, batch_size=64, lr=0.01, momentum=0.9)
    settings = resolve_settings(
        Settings(**paper, width=width, device=str(device), precision="fp32")
    )
    g = torch.Generator().manual_seed(0)
    datas = [
        RunData(
            torch.rand(64, 1, 28, 28, generator=g),
            torch.randint(0, 10, (64,), generator=g),
            torch.zeros(64, dtype=torch.bool),
            torch.rand(8, 1, 28, 28, generator=g),
            torch.randint(0, 10, (8,), generator=g),
        )
        for _ in range(k)
    ]
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    runs = make_runs(datas, settings, list(range(k)), device, memory_format, contextlib.nullcontext)
    idx = torch.arange(64, device=device)
    loss = runs.loss(runs.model)(idx if k == 1 else idx.expand(k, 64).contiguous())
    loss.sum().backward()
    runs.optimizer.step()
    return runs


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=6, help="runs in the job (K)")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", help="where the checkpoints go (default: beside --out)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = runs_with_momentum(args.runs, args.width, device)
    metrics = [[{"epoch": e, "train_loss": 1.0} for e in range(1, 11)] for _ in range(args.runs)]
    inline, pause, write = [], [], []
    with tempfile.TemporaryDirectory(dir=args.dir or out.parent) as folder:
        paths = [Path(folder) / f"run{k}" / "checkpoint.pt" for k in range(args.runs)]
        with RunCheckpoints(paths, ["f"] * args.runs, [f"run{k}" for k in range(args.runs)]) as ck:
            ck.save(runs, device, 0, metrics)  # first write: folders, allocator warm-up
            ck.wait()
            for epoch in range(1, args.repeats + 1):
                started = time.perf_counter()
                ck.save(runs, device, epoch, metrics)
                ck.wait()
                inline.append(time.perf_counter() - started)
                before = ck.write_seconds
                started = time.perf_counter()
                ck.save(runs, device, epoch, metrics)
                pause.append(time.perf_counter() - started)
                ck.wait()
                write.append(ck.write_seconds - before)
        size = paths[0].stat().st_size
    median = statistics.median
    record = record_header("checkpoint_pause", device) | {
        "runs": args.runs,
        "width": args.width,
        "parameters_per_run": count_parameters(runs.run_model(0)),
        "checkpoint_bytes_per_run": size,
        "repeats": args.repeats,
        "inline_pause_seconds": median(inline),
        "background_pause_seconds": median(pause),
        "background_write_seconds": median(write),
        "inline_pause_seconds_all": inline,
        "background_pause_seconds_all": pause,
        "background_write_seconds_all": write,
        "paper_job_checkpoints": PAPER_CHECKPOINTS_PER_JOB,
        "paper_job_inline_pause_seconds": PAPER_CHECKPOINTS_PER_JOB * median(inline),
        "paper_job_background_pause_seconds": PAPER_CHECKPOINTS_PER_JOB * median(pause),
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if not k.endswith("_all")}, indent=2))
    return record


if __name__ == "__main__":
    main()
