"""Problem 2: why gradients vanish in a deep sigmoid MLP, measured layer by layer.

For y_l = sigma(y~_l), y~_l = A_l y_{l-1} + b_l (l < L) and a linear last layer
y_L = A_L y_{L-1} + b_L, the chain rule gives the row vector

    dy_L/db_i = A_L diag(sigma'(y~_{L-1})) A_{L-1} ... A_{i+1} diag(sigma'(y~_i))

and dy_L/dA_i = (dy_L/db_i)^T y_{i-1}^T. Each factor diag(sigma'(y~_j)) A_j shrinks the product when
A_j is small or y~_j saturates sigma (sigma' <= 1/4 everywhere). The scenarios below show each case,
and ReLU beside sigmoid, with the product evaluated explicitly and checked against autograd.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from ..plotting import save_figure

log = logging.getLogger(__name__)

SEED = 0
DEPTH = 12
WIDTH = 16
#: The layer that is made small or saturated in the perturbed scenarios (1-based).
PERTURBED_LAYER = 6
SMALL_SCALE = 1e-3
SATURATING_BIAS = 10.0

ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "sigmoid": (torch.sigmoid, lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x))),
    "relu": (torch.relu, lambda x: (x > 0).to(x.dtype)),
}


@dataclass
class Network:
    A: list[torch.Tensor]
    b: list[torch.Tensor]
    activation: str


def draw_network(seed: int = SEED, depth: int = DEPTH, width: int = WIDTH):
    """One draw of float64 weights (He scale, std sqrt(2 / n_in)), biases and an input x."""
    gen = torch.Generator().manual_seed(seed)
    dims = [width] * depth + [1]
    A = [
        torch.randn(dims[i + 1], dims[i], generator=gen, dtype=torch.float64) * (2 / dims[i]) ** 0.5
        for i in range(depth)
    ]
    b = [0.1 * torch.randn(dims[i + 1], generator=gen, dtype=torch.float64) for i in range(depth)]
    x = torch.randn(width, generator=gen, dtype=torch.float64)
    return A, b, x


def scenarios(seed: int = SEED) -> tuple[torch.Tensor, dict[str, Network]]:
    """The same weights as sigmoid, with a small A_j, with a saturated layer j (big bias), ReLU."""
    A, b, x = draw_network(seed)
    j = PERTURBED_LAYER - 1
    small_A = [a.clone() for a in A]
    small_A[j] = small_A[j] * SMALL_SCALE
    saturated_b = [v.clone() for v in b]
    saturated_b[j] = saturated_b[j] + SATURATING_BIAS
    return x, {
        "sigmoid": Network(A, b, "sigmoid"),
        f"sigmoid, A_{PERTURBED_LAYER} x {SMALL_SCALE:g}": Network(small_A, b, "sigmoid"),
        f"sigmoid, b_{PERTURBED_LAYER} + {SATURATING_BIAS:g} (saturated)": Network(
            A, saturated_b, "sigmoid"
        ),
        "relu": Network(A, b, "relu"),
    }


def forward(net: Network, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Pre-activations [y~_1..y~_L] and outputs [y_0 = x, y_1..y_L]."""
    act, _ = ACTIVATIONS[net.activation]
    pre, ys = [], [x]
    for ell, (A, b) in enumerate(zip(net.A, net.b, strict=True)):
        pre.append(A @ ys[-1] + b)
        ys.append(act(pre[-1]) if ell < len(net.A) - 1 else pre[-1])
    return pre, ys


def chain_rule_bias_gradients(net: Network, x: torch.Tensor) -> list[torch.Tensor]:
    """dy_L/db_i for i = 1..L by the explicit product of the factors diag(sigma'(y~_j)) A_j."""
    _, slope = ACTIVATIONS[net.activation]
    pre, _ = forward(net, x)
    depth = len(net.A)
    grads = [torch.ones(1, dtype=x.dtype)]  # dy_L/db_L = 1 (linear last layer)
    row = net.A[-1]  # dy_L/dy_{L-1}
    for i in reversed(range(depth - 1)):
        grads.insert(0, (row * slope(pre[i])).flatten())  # row @ diag(sigma'(y~_i))
        row = (row * slope(pre[i])) @ net.A[i]  # dy_L/dy_{i-1}
    return grads


def autograd_gradients(net: Network, x: torch.Tensor):
    """dy_L/dA_i and dy_L/db_i for every layer by torch.autograd."""
    A = [a.clone().requires_grad_() for a in net.A]
    b = [v.clone().requires_grad_() for v in net.b]
    _, ys = forward(Network(A, b, net.activation), x)
    grads = torch.autograd.grad(ys[-1].sum(), [*A, *b])
    return list(grads[: len(A)]), list(grads[len(A) :])


def layer_table(x: torch.Tensor, nets: dict[str, Network]) -> pd.DataFrame:
    """Per scenario and layer: ||dy_L/db_i||, ||dy_L/dA_i||_F and the relative error of the
    explicit chain-rule product (for b_i and for A_i = outer product with y_{i-1})."""
    rows = []
    for name, net in nets.items():
        product = chain_rule_bias_gradients(net, x)
        pre, ys = forward(net, x)
        dA, db = autograd_gradients(net, x)
        slope = ACTIVATIONS[net.activation][1]
        for i in range(len(net.A)):
            norm_b, norm_A = float(db[i].norm()), float(dA[i].norm())
            error_b = float((product[i] - db[i]).norm()) / max(norm_b, 1e-300)
            error_A = float((torch.outer(product[i], ys[i]) - dA[i]).norm()) / max(norm_A, 1e-300)
            rows.append(
                {
                    "scenario": name,
                    "activation": net.activation,
                    "layer": i + 1,
                    "grad_b_norm": norm_b,
                    "grad_A_norm": norm_A,
                    "product_rel_error": max(error_b, error_A),
                    "min_sigma_prime": float(slope(pre[i]).min()) if i < len(net.A) - 1 else 1.0,
                }
            )
    return pd.DataFrame(rows)


def results(table: pd.DataFrame) -> dict:
    """Headline numbers: first-layer gradient norms and their ratio to the sigmoid baseline."""
    first = table[table.layer == 1].set_index("scenario")
    base = first.loc["sigmoid"]
    keys = {"sigmoid": "sigmoid", "relu": "relu"}
    keys.update({name: "small_A" for name in first.index if " x " in name})
    keys.update({name: "saturated" for name in first.index if "saturated" in name})
    out = {
        "seed": SEED,
        "depth": DEPTH,
        "width": WIDTH,
        "perturbed_layer": PERTURBED_LAYER,
        "small_scale": SMALL_SCALE,
        "saturating_bias": SATURATING_BIAS,
        "max_product_rel_error": float(table.product_rel_error.max()),
        "scenarios": list(first.index),
    }
    for name, key in keys.items():
        out[f"grad_b1_norm_{key}"] = float(first.loc[name, "grad_b_norm"])
        out[f"grad_A1_norm_{key}"] = float(first.loc[name, "grad_A_norm"])
        out[f"grad_b1_ratio_to_sigmoid_{key}"] = float(
            first.loc[name, "grad_b_norm"] / base.grad_b_norm
        )
    # layers from the small A_j up keep their gradients up to the change of sigma' that smaller
    # pre-activations bring: the range of their ratios to the sigmoid baseline
    by_layer = table.pivot(index="layer", columns="scenario", values="grad_b_norm")
    small = next(name for name, key in keys.items() if key == "small_A")
    above = (by_layer[small] / by_layer["sigmoid"])[by_layer.index >= PERTURBED_LAYER]
    out["small_A_ratio_to_sigmoid_from_perturbed_layer"] = [float(above.min()), float(above.max())]
    sat = table[table.scenario.str.contains("saturated")]
    out["min_sigma_prime_saturated_layer"] = float(
        sat[sat.layer == PERTURBED_LAYER].min_sigma_prime.iloc[0]
    )
    for scenario in ("sigmoid", "relu"):
        norms = table[table.scenario == scenario].set_index("layer").grad_b_norm
        decay = (norms[1] / norms[DEPTH - 1]) ** (1 / (DEPTH - 2))
        out[f"{scenario}_mean_decay_per_layer"] = float(decay)
    return out


def _wide(table: pd.DataFrame, column: str) -> pd.DataFrame:
    wide = table.pivot(index="layer", columns="scenario", values=column)
    wide = wide[list(dict.fromkeys(table.scenario))]
    return wide.astype(float).reset_index()


def _figure(table: pd.DataFrame, stem: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, column, label in (
        (axes[0], "grad_b_norm", r"$\|\partial y_L/\partial b_i\|_2$"),
        (axes[1], "grad_A_norm", r"$\|\partial y_L/\partial A_i\|_F$"),
    ):
        for (name, part), marker in zip(table.groupby("scenario", sort=False), "osD^", strict=True):
            ax.plot(part.layer, part[column], marker=marker, label=name)
        ax.axvline(PERTURBED_LAYER, color="grey", ls=":", lw=1)
        ax.set(yscale="log", xlabel="layer $i$", title=label)
        ax.set_xticks(range(1, DEPTH + 1))
    axes[0].set_ylabel("gradient norm of $y_L$")
    axes[1].legend(fontsize="small")
    save_figure(fig, stem)


def write_vanishing_gradients(
    results_json: str | Path,
    layers_csv: str | Path,
    table_b_csv: str | Path,
    table_A_csv: str | Path,
    figure_png: str | Path,
) -> dict:
    """Run problem 2 and write its results, tables and figure (PNG and PDF)."""
    x, nets = scenarios()
    table = layer_table(x, nets)
    summary = results(table)
    log.info(
        "first-layer bias gradient ratios: %s", {k: v for k, v in summary.items() if "ratio" in k}
    )
    Path(results_json).write_text(json.dumps(summary, indent=2))
    table.to_csv(layers_csv, index=False)
    _wide(table, "grad_b_norm").to_csv(table_b_csv, index=False)
    _wide(table, "grad_A_norm").to_csv(table_A_csv, index=False)
    _figure(table, Path(figure_png).with_suffix(""))
    return summary
