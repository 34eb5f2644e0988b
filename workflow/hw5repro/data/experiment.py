"""The experiment grid of problem 6: which training runs a configuration asks for."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from decimal import Decimal

LABEL_NOISE = "labels"
INPUT_CORRUPTIONS = ("shuffled_pixels", "random_pixels", "gaussian")
CORRUPTIONS = (LABEL_NOISE, *INPUT_CORRUPTIONS)
#: The canonical text of a ratio in [0, 1] (what :func:`format_ratio` writes, nothing else).
RATIO_PATTERN = r"(?:0|1|0\.[0-9]*[1-9])"
#: Regular expression of exactly the run names :attr:`Run.name` writes (wildcard ``run_id``).
RUN_NAME_PATTERN = rf"(?:{'|'.join(CORRUPTIONS)})_r{RATIO_PATTERN}_s(?:0|[1-9][0-9]*)"


def format_ratio(ratio: float) -> str:
    """Canonical text of a ratio in file names, without exponent: 0 -> '0', 1e-05 -> '0.00001';
    the shortest text with ``float(format_ratio(r)) == r``."""
    text = format(Decimal(repr(float(ratio))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True, order=True)
class Run:
    """One training job: a corruption kind, its label-noise ratio and a seed."""

    corruption: str
    ratio: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.corruption}_r{format_ratio(self.ratio)}_s{self.seed}"

    @classmethod
    def from_name(cls, name: str) -> Run:
        if not re.fullmatch(RUN_NAME_PATTERN, name):
            raise ValueError(f"not a run name: {name!r} (expected e.g. labels_r0.2_s0)")
        corruption, ratio, seed = name.rsplit("_", 2)
        return cls(corruption, float(ratio[1:]), int(seed[1:]))


def runs_from_config(config: dict) -> list[Run]:
    """Every run of the configuration: the label-ratio sweep and each input corruption, per seed."""
    exp = config["experiment"]
    runs = []
    for seed in exp["seeds"]:
        runs += [Run(LABEL_NOISE, float(r), int(seed)) for r in exp["label_ratios"]]
        runs += [Run(kind, 0.0, int(seed)) for kind in exp["input_corruptions"]]
    return sorted(set(runs))


def stream_seed(seed: int, stream: str) -> int:
    """A stable 63-bit seed for an independent random stream (Python's hash() is salted)."""
    return (int(seed) * 1_000_003 + zlib.crc32(stream.encode())) % (2**63 - 1)
