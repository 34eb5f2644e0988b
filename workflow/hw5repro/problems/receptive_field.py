"""Problem 4: the input region each output of VGG16's first blocks depends on.

Per spatial axis, a conv/pool layer (kernel K, stride S, padding P) maps the size r, jump d and
start u of the field (r_0 = 1, d_0 = 1, u_0 = 0) to

    r_out = r_in + (K - 1) d_in,   d_out = d_in S,   u_out = u_in - P d_in;

output index i covers input indices u + i d .. u + i d + r - 1, clipped to the image. Every output
channel depends on all input channels.

Two exact float32 checks on the real shapes (3x224x224, 64 and 128 channels):
- gradient support: with positive weights and biases every ReLU is active and no sum cancels, so
  the nonzero entries of d y[k,i,j] / d x are exactly the connected inputs (the smallest path
  product, about 4e-13, cannot underflow). A max-pool routes its gradient to one argmax per
  window, so here the pools are average pools of the same window (same connectivity);
- perturbation with the real max-pools: redrawing every input outside the region leaves
  y[:, i, j] bit for bit unchanged.
A convolution algorithm that mixed neighbouring windows (Winograd, FFT) would fail the checks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.patches as patches
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import torch
from torch import nn

from ..plotting import save_figure

log = logging.getLogger(__name__)

SEED = 0
IMAGE_SIZE = 224
IN_CHANNELS = 3
#: VGG16's channel counts of block 1 and block 2.
CHANNELS = (64, 128)
DTYPE = torch.float32


@dataclass(frozen=True)
class Layer:
    name: str
    kernel: int
    stride: int
    padding: int


#: VGG16 up to the second max-pool; the outputs y_1, y_2, y_3 follow the named layers.
LAYERS = (
    Layer("conv1_1", 3, 1, 1),
    Layer("conv1_2", 3, 1, 1),
    Layer("pool1", 2, 2, 0),
    Layer("conv2_1", 3, 1, 1),
    Layer("conv2_2", 3, 1, 1),
    Layer("pool2", 2, 2, 0),
)
OUTPUTS = {"y1": "conv1_2", "y2": "pool1", "y3": "pool2"}


@dataclass(frozen=True)
class Field:
    """Receptive field of one layer's outputs: size r, jump d and start u (see module doc)."""

    size: int
    jump: int
    start: int

    def region(self, index: int, extent: int = IMAGE_SIZE) -> tuple[int, int]:
        """Inclusive input index range covered by output ``index``, clipped to 0..extent-1."""
        first = self.start + index * self.jump
        return max(first, 0), min(first + self.size - 1, extent - 1)

    def formula(self) -> str:
        def term(offset: int) -> str:
            head = f"{self.jump}i" if self.jump != 1 else "i"
            return head if offset == 0 else f"{head}{offset:+d}"

        return f"{term(self.start)}..{term(self.start + self.size - 1)}"


def receptive_fields(layers=LAYERS) -> dict[str, Field]:
    """Field after every layer, by the recursion in the module docstring."""
    field, fields = Field(1, 1, 0), {}
    for layer in layers:
        field = Field(
            size=field.size + (layer.kernel - 1) * field.jump,
            jump=field.jump * layer.stride,
            start=field.start - layer.padding * field.jump,
        )
        fields[layer.name] = field
    return fields


def output_fields() -> dict[str, Field]:
    fields = receptive_fields()
    return {name: fields[layer] for name, layer in OUTPUTS.items()}


class VGGPrefix(nn.Module):
    """conv-ReLU x2, pool, conv-ReLU x2, pool; returns y1, y2, y3 (up to ``depth`` of them)."""

    def __init__(self, channels=CHANNELS, pool: str = "max", seed: int = SEED):
        super().__init__()
        c1, c2 = channels
        pairs = ((IN_CHANNELS, c1), (c1, c1), (c1, c2), (c2, c2))
        self.convs = nn.ModuleList([nn.Conv2d(i, o, 3, padding=1) for i, o in pairs])
        self.pool = nn.MaxPool2d(2, 2) if pool == "max" else nn.AvgPool2d(2, 2)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # positive weights: no zero weight, no dead ReLU, no cancellation
            for conv in self.convs:
                fan_in = conv.weight[0].numel()
                conv.weight.copy_((0.5 + torch.rand(conv.weight.shape, generator=gen)) / fan_in)
                conv.bias.copy_(0.1 * torch.rand(conv.bias.shape, generator=gen))
        self.to(DTYPE).requires_grad_(False)  # gradients are taken w.r.t. the input only

    def forward(self, x: torch.Tensor, depth: int = 3) -> list[torch.Tensor]:
        y1 = torch.relu(self.convs[1](torch.relu(self.convs[0](x))))
        outputs = [y1]
        if depth >= 2:
            outputs.append(self.pool(y1))
        if depth >= 3:
            z = torch.relu(self.convs[3](torch.relu(self.convs[2](outputs[-1]))))
            outputs.append(self.pool(z))
        return outputs


def positions(output: str, channels=CHANNELS) -> list[tuple[int, int, int]]:
    """(k, i, j) checked per output: two corners, an edge and an interior point (nested)."""
    n = IMAGE_SIZE // {"y1": 1, "y2": 2, "y3": 4}[output]
    c = channels[0] if output in ("y1", "y2") else channels[1]
    interior = {"y1": 20, "y2": 10, "y3": 5}[output]
    return [(0, 0, 0), (c - 1, n - 1, n - 1), (c // 2, 1, n // 2), (1, interior, interior)]


def predicted_mask(field: Field, i: int, j: int) -> np.ndarray:
    """Boolean 3 x H x W mask of the region (all input channels)."""
    mask = np.zeros((IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    (r0, r1), (c0, c1) = field.region(i), field.region(j)
    mask[:, r0 : r1 + 1, c0 : c1 + 1] = True
    return mask


def random_image(seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE, generator=gen, dtype=DTYPE)


def gradient_support(
    net: VGGPrefix, output: str, k: int, i: int, j: int, x: torch.Tensor
) -> np.ndarray:
    """Nonzero pattern (3 x H x W) of d y[k,i,j] / d x for output "y1", "y2" or "y3"."""
    depth = int(output[1])
    x = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(net(x, depth)[-1][0, k, i, j], x)
    return (grad[0] != 0).numpy()


def outside_perturbation_unchanged(
    net: VGGPrefix, output: str, i: int, j: int, x: torch.Tensor, baseline: torch.Tensor, seed: int
) -> bool:
    """Whether y[:, i, j] stays bit for bit ``baseline``'s when every input outside is redrawn."""
    inside = torch.from_numpy(predicted_mask(output_fields()[output], i, j))
    perturbed = torch.where(inside, x, random_image(seed))
    with torch.no_grad():
        y = net(perturbed, int(output[1]))[-1]
    return bool(torch.equal(y[0, :, i, j], baseline[0, :, i, j]))


def verify(channels=CHANNELS, seed: int = SEED) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Check every output and position; also return the supports for the figure."""
    avg_net = VGGPrefix(channels, pool="avg", seed=seed)
    max_net = VGGPrefix(channels, pool="max", seed=seed)
    x = random_image(seed)
    with torch.no_grad():
        baselines = dict(zip(OUTPUTS, max_net(x), strict=True))
    rows, supports = [], {}
    for n, (output, field) in enumerate(output_fields().items()):
        for m, (k, i, j) in enumerate(positions(output, channels)):
            support = gradient_support(avg_net, output, k, i, j, x)
            supports[f"{output}[{k},{i},{j}]"] = support
            rows_hit = np.flatnonzero(support.any(axis=(0, 2)))
            cols_hit = np.flatnonzero(support.any(axis=(0, 1)))
            (r0, r1), (c0, c1) = field.region(i), field.region(j)
            rows.append(
                {
                    "output": output,
                    "k": k,
                    "i": i,
                    "j": j,
                    "predicted_rows": f"{r0}..{r1}",
                    "predicted_cols": f"{c0}..{c1}",
                    "measured_rows": f"{rows_hit.min()}..{rows_hit.max()}",
                    "measured_cols": f"{cols_hit.min()}..{cols_hit.max()}",
                    "support_size": int(support.sum()),
                    "support_equals_region": bool(
                        np.array_equal(support, predicted_mask(field, i, j))
                    ),
                    "all_channels": bool(support.any(axis=(1, 2)).all()),
                    "outside_perturbation_unchanged": outside_perturbation_unchanged(
                        max_net, output, i, j, x, baselines[output], seed + 1 + 10 * n + m
                    ),
                }
            )
    return pd.DataFrame(rows), supports


def max_pool_gradient_support(channels=CHANNELS, seed: int = SEED) -> np.ndarray:
    """Nonzero pattern of d y3[k,i,j] / d x through the real max-pools at the interior position."""
    net = VGGPrefix(channels, pool="max", seed=seed)
    k, i, j = positions("y3", channels)[3]
    return gradient_support(net, "y3", k, i, j, random_image(seed))


def fields_table() -> pd.DataFrame:
    rows, fields = [], receptive_fields()
    for layer in LAYERS:
        field = fields[layer.name]
        output = next((name for name, last in OUTPUTS.items() if last == layer.name), "")
        rows.append(
            {
                "layer": layer.name,
                "output": output,
                "kernel": layer.kernel,
                "stride": layer.stride,
                "padding": layer.padding,
                "size r": field.size,
                "jump d": field.jump,
                "start u": field.start,
                "rows/cols covered by index i": field.formula(),
            }
        )
    return pd.DataFrame(rows)


def results(checks: pd.DataFrame, max_support: np.ndarray) -> dict:
    out = {
        "image_size": IMAGE_SIZE,
        "channels": list(CHANNELS),
        "dtype": str(DTYPE).removeprefix("torch."),
        "positions_checked": len(checks),
        "all_supports_equal_regions": bool(checks.support_equals_region.all()),
        "all_outside_perturbations_unchanged": bool(checks.outside_perturbation_unchanged.all()),
        "all_channels_in_support": bool(checks.all_channels.all()),
    }
    for name, field in output_fields().items():
        out[name] = {
            **asdict(field),  # size, jump, start
            "formula": field.formula(),
            "area": field.size**2,
            "positions_verified": int(checks[checks.output == name].support_equals_region.sum()),
        }
    k, i, j = positions("y3")[3]
    out["max_pool_gradient_support_y3"] = {
        "position": [k, i, j],
        "pixels": int(max_support.sum()),
        "region_pixels": out["y3"]["area"] * IN_CHANNELS,
    }
    return out


def _outline(ax, field: Field, i: int, j: int, colour, label: str) -> None:
    """Outline the region of output (i, j) on ``ax``."""
    (r0, r1), (c0, c1) = field.region(i), field.region(j)
    box = (c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1
    ax.add_patch(patches.Rectangle(*box, fill=False, ec=colour, lw=2, label=label))


def _figure(supports: dict[str, np.ndarray], max_support: np.ndarray, stem: Path) -> None:
    fields = output_fields()
    colours = {"y1": "tab:red", "y2": "tab:orange", "y3": "tab:blue"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    panels = (
        (axes[0], 3, (8, 36), "(a) nested interior positions"),
        (axes[1], 0, (0, 20), "(b) top-left corner (clipped)"),
    )
    for ax, index, (lo, hi), title in panels:
        for output in ("y3", "y2", "y1"):
            k, i, j = positions(output)[index]
            mask = supports[f"{output}[{k},{i},{j}]"].any(axis=0)
            rgba = np.zeros((*mask.shape, 4))
            rgba[mask] = matplotlib.colors.to_rgba(colours[output], 0.45)
            ax.imshow(rgba, origin="upper", interpolation="nearest")
            r0, r1 = fields[output].region(i)
            label = f"{output}[{k},{i},{j}]: rows {r0}..{r1}"
            _outline(ax, fields[output], i, j, colours[output], label)
        ax.set(xlim=(lo - 0.5, hi + 0.5), ylim=(hi + 0.5, lo - 0.5), title=title)
        ax.legend(fontsize="x-small", loc="lower right")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    k, i, j = positions("y3")[3]
    axes[2].imshow(max_support.any(axis=0), cmap="Greys", interpolation="nearest")
    _outline(axes[2], fields["y3"], i, j, colours["y3"], "region")
    axes[2].set(
        xlim=(7.5, 36.5), ylim=(36.5, 7.5), title=f"(c) max-pool gradient of y3[{k},{i},{j}]"
    )
    for ax in axes:
        ax.set(xlabel="input column", ylabel="input row")
    axes[2].legend(fontsize="x-small", loc="lower right")
    save_figure(fig, stem)


def write_receptive_field(
    results_json: str | Path, fields_csv: str | Path, checks_csv: str | Path, figure_png: str | Path
) -> dict:
    """Run problem 4 and write its results, tables and figure (PNG and PDF)."""
    checks, supports = verify()
    max_support = max_pool_gradient_support()
    summary = results(checks, max_support)
    log.info(
        "supports equal regions: %s; outside perturbations unchanged: %s",
        summary["all_supports_equal_regions"],
        summary["all_outside_perturbations_unchanged"],
    )
    Path(results_json).write_text(json.dumps(summary, indent=2))
    fields_table().to_csv(fields_csv, index=False)
    checks.to_csv(checks_csv, index=False)
    _figure(supports, max_support, Path(figure_png).with_suffix(""))
    return summary
