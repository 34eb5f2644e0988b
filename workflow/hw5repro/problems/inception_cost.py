"""Problem 5: parameters and operation counts of a naive and a bottleneck Inception module.

For a convolution with C_in input and C_out output channels, a k x k kernel, bias and an output of
C_out x H x W (stride 1, 'same' zero padding, whose zeros are multiplied like any input):

    parameters      = k^2 C_in C_out + C_out
    multiplications = k^2 C_in * C_out H W
    additions       = (k^2 C_in - 1 + 1) * C_out H W   (the dot product plus the bias)
    activations     = C_out H W

Max-pooling is not counted. The closed forms are cross-checked against modules built in torch:
parameter counts, FlopCounterMode (2 * multiply-accumulates per conv) and output sizes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..plotting import save_figure

log = logging.getLogger(__name__)

INPUT_SHAPE = (256, 32, 32)
#: Row order of the homework's Tables 1 and 2.
QUANTITIES = ("parameters", "additions", "multiplications", "activations")


@dataclass(frozen=True)
class Conv:
    """One convolution of a module; ``source`` is "input", "pool" or the conv feeding it."""

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    source: str = "input"

    @property
    def padding(self) -> int:
        return self.kernel // 2

    def counts(self, height: int, width: int) -> dict[str, int]:
        outputs = self.out_channels * height * width  # stride 1, same padding
        per_output = self.kernel**2 * self.in_channels
        return {
            "parameters": per_output * self.out_channels + self.out_channels,
            "multiplications": per_output * outputs,
            "additions": (per_output - 1 + 1) * outputs,
            "activations": outputs,
        }


#: Module 1 (naive): three parallel convolutions and a 3x3 max-pool on the 256-channel input.
NAIVE = (Conv("conv1", 256, 128, 1), Conv("conv2", 256, 192, 3), Conv("conv3", 256, 96, 5))
#: Module 2 (bottleneck), named as in the homework's Figure 2: 1x1; 1x1->3x3; 1x1->5x5; pool->1x1.
BOTTLENECK = (
    Conv("conv1", 256, 128, 1),
    Conv("conv2", 256, 64, 1),
    Conv("conv3", 64, 192, 3, source="conv2"),
    Conv("conv4", 256, 64, 1),
    Conv("conv5", 64, 96, 5, source="conv4"),
    Conv("conv6", 256, 64, 1, source="pool"),
)
MODULES = {"module 1 (naive)": NAIVE, "module 2 (bottleneck)": BOTTLENECK}


def count_table(convs, input_shape=INPUT_SHAPE) -> pd.DataFrame:
    """Rows = quantities, columns = convolutions and TOTAL (the layout of the homework's tables)."""
    _, height, width = input_shape
    table = pd.DataFrame({conv.name: conv.counts(height, width) for conv in convs})
    table["TOTAL"] = table.sum(axis=1)
    return table.loc[list(QUANTITIES)]


class InceptionModule(nn.Module):
    """Convs (each followed by a ReLU) and a 3x3/1 max-pool, concatenating every branch end;
    records each conv's activation count."""

    def __init__(self, convs):
        super().__init__()
        self.sources = {c.name: c.source for c in convs}
        self.convs = nn.ModuleDict(
            {
                c.name: nn.Conv2d(c.in_channels, c.out_channels, c.kernel, padding=c.padding)
                for c in convs
            }
        )
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.activations: dict[str, int] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {"input": x, "pool": self.pool(x)}
        for name, conv in self.convs.items():  # sources precede their consumers
            values[name] = torch.relu(conv(values[self.sources[name]]))
            self.activations[name] = values[name].numel()
        consumed = set(self.sources.values())
        ends = [value for name, value in values.items() if name != "input" and name not in consumed]
        return torch.cat(ends, dim=1)


def torch_counts(convs, input_shape=INPUT_SHAPE) -> pd.DataFrame:
    """The quantities measured in torch: parameter numel, FlopCounterMode / 2, conv outputs."""
    module = InceptionModule(convs)
    flops = {}
    with torch.no_grad():
        for name, conv in module.convs.items():
            inp = torch.zeros(1, conv.in_channels, *input_shape[1:])
            with FlopCounterMode(display=False) as counter:
                conv(inp)
            flops[name] = counter.get_total_flops()
        module(torch.zeros(1, *input_shape))
    table = pd.DataFrame(
        {
            name: {
                "parameters": sum(p.numel() for p in conv.parameters()),
                "multiplications": flops[name] // 2,
                "activations": module.activations[name],
            }
            for name, conv in module.convs.items()
        }
    )
    table["TOTAL"] = table.sum(axis=1)
    return table


def _with_quantity(table: pd.DataFrame) -> pd.DataFrame:
    out = table.astype("int64")
    out.index.name = "quantity"
    return out.reset_index()


def results(tables: dict[str, pd.DataFrame], checks: dict[str, pd.DataFrame]) -> dict:
    out: dict = {"input_shape": list(INPUT_SHAPE)}
    for key, (name, table) in zip(("module1", "module2"), tables.items(), strict=True):
        out[key] = {
            "name": name,
            **{q: {c: int(v) for c, v in table.loc[q].items()} for q in QUANTITIES},
        }
        measured = checks[name]
        out[key]["torch_agrees"] = bool(
            all((measured.loc[q] == table.loc[q, measured.columns]).all() for q in measured.index)
        )
    one, two = out["module1"], out["module2"]
    for q in QUANTITIES:
        out[f"ratio_{q}"] = two[q]["TOTAL"] / one[q]["TOTAL"]
    out["extra_activations"] = two["activations"]["TOTAL"] - one["activations"]["TOTAL"]
    out["saved_flops"] = 2 * (one["multiplications"]["TOTAL"] - two["multiplications"]["TOTAL"])
    return out


def _figure(tables: dict[str, pd.DataFrame], stem: Path) -> None:
    """The homework's Figure 3: (a) parameters and activations, (b) additions, multiplications."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    names = list(tables)
    width = 0.38
    for ax, pair, title in (
        (axes[0], ("parameters", "activations"), "(a) parameters and activation evaluations"),
        (axes[1], ("additions", "multiplications"), "(b) additions and multiplications"),
    ):
        x = np.arange(len(pair))
        for offset, name in zip((-width / 2, width / 2), names, strict=True):
            values = [tables[name].loc[q, "TOTAL"] for q in pair]
            bars = ax.bar(x + offset, values, width, label=name)
            ax.bar_label(bars, labels=[f"{v / 1e6:,.2f}M" for v in values], fontsize="small")
        ax.set_xticks(x, pair)
        ax.set(title=title, ylabel="count")
        ax.margins(y=0.12)
    axes[0].legend(fontsize="small")
    save_figure(fig, stem)


def write_inception_cost(
    results_json: str | Path,
    module1_csv: str | Path,
    module2_csv: str | Path,
    figure_png: str | Path,
) -> dict:
    """Run problem 5 and write its results, the two tables and the figure (PNG and PDF)."""
    tables = {name: count_table(convs) for name, convs in MODULES.items()}
    checks = {name: torch_counts(convs) for name, convs in MODULES.items()}
    summary = results(tables, checks)
    log.info("totals: %s", {k: summary[k]["parameters"]["TOTAL"] for k in ("module1", "module2")})
    Path(results_json).write_text(json.dumps(summary, indent=2))
    for table, path in zip(tables.values(), (module1_csv, module2_csv), strict=True):
        _with_quantity(table).to_csv(path, index=False)
    _figure(tables, Path(figure_png).with_suffix(""))
    return summary
