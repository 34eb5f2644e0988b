"""Problem 1: a hand-written backward pass for a small sigmoid MLP, checked against autograd.

The network is y_l = sigmoid(A_l y_{l-1} + b_l) for l < L and y_L = A_L y_{L-1} + b_L, with the
loss 0.5 (y_L - Y)^2. The set-up (seed, depth, shapes and drawing order) is the homework's.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from ..plotting import save_figure

log = logging.getLogger(__name__)

SEED = 0
DEPTH = 6
WIDTH = 4
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class MLP:
    """The data and parameters of the homework's network (index ell = layer ell + 1)."""

    X: torch.Tensor
    Y: torch.Tensor
    A: list[torch.Tensor]
    b: list[torch.Tensor]

    def to(self, dtype: torch.dtype) -> MLP:
        return MLP(
            self.X.to(dtype),
            self.Y.to(dtype),
            [a.to(dtype) for a in self.A],
            [b.to(dtype) for b in self.b],
        )


def draw_problem(seed: int = SEED, depth: int = DEPTH, width: int = WIDTH) -> MLP:
    """X, Y, then (A_l, b_l) layer by layer, all torch.rand in float32, in the homework's order."""
    torch.manual_seed(seed)
    X = torch.rand(width, 1)
    Y = torch.rand(1, 1)
    A, b = [], []
    for _ in range(depth - 1):
        A.append(torch.rand(width, width))
        b.append(torch.rand(width, 1))
    A.append(torch.rand(1, width))
    b.append(torch.rand(1, 1))
    return MLP(X, Y, A, b)


def sigmoid_prime(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1 - s)


def forward(net: MLP) -> list[torch.Tensor]:
    """[y_0 = X, y_1, ..., y_L]; the last layer is linear."""
    ys = [net.X]
    for ell, (A, b) in enumerate(zip(net.A, net.b, strict=True)):
        pre = A @ ys[-1] + b
        ys.append(torch.sigmoid(pre) if ell < len(net.A) - 1 else pre)
    return ys


def loss(net: MLP) -> torch.Tensor:
    return 0.5 * ((forward(net)[-1] - net.Y) ** 2).sum()


def manual_backward(net: MLP) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The homework's backward pass: dA_l = db_l^T y_{l-1}^T, db_l = dy_l diag(S'(y~_l)) and
    dy_{l-1} = db_l A_l, where dy_l = dloss/dy_l and db_l are row vectors."""
    ys = forward(net)
    depth = len(net.A)
    dA_list: list[torch.Tensor] = []
    db_list: list[torch.Tensor] = []
    dy = ys[-1] - net.Y  # dloss/dy_L (1 x 1)
    for ell in reversed(range(depth)):
        A, b, y = net.A[ell], net.b[ell], ys[ell]
        pre = A @ y + b
        slope = sigmoid_prime(pre) if ell < depth - 1 else torch.ones_like(pre)
        db = dy @ torch.diag(slope.flatten())  # dloss/db_ell as a row vector
        dA = (y @ db).T  # dloss/dA_ell
        dy = db @ A  # dloss/dy_{ell-1}
        dA_list.insert(0, dA)
        db_list.insert(0, db)
    return dA_list, db_list


def autograd_backward(net: MLP) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Gradients of the same loss by torch.autograd (b gradients keep b's column shape)."""
    params = [p.clone().requires_grad_() for p in (*net.A, *net.b)]
    depth = len(net.A)
    leaf = MLP(net.X, net.Y, params[:depth], params[depth:])
    grads = torch.autograd.grad(loss(leaf), params)
    return list(grads[:depth]), list(grads[depth:])


def compare(net: MLP) -> pd.DataFrame:
    """Per dtype, layer and parameter: the largest absolute and elementwise relative difference
    between the hand-written and the autograd gradient."""
    rows = []
    for name, dtype in DTYPES.items():
        typed = net.to(dtype)
        dA_hand, db_hand = manual_backward(typed)
        dA_auto, db_auto = autograd_backward(typed)
        for ell in range(len(net.A)):
            for param, hand, auto in (
                ("A", dA_hand[ell], dA_auto[ell]),
                ("b", db_hand[ell].T, db_auto[ell]),
            ):
                rows.append(
                    {
                        "dtype": name,
                        "layer": ell + 1,
                        "parameter": param,
                        "shape": "x".join(map(str, auto.shape)),
                        "max_abs_grad": float(auto.abs().max()),
                        "max_abs_diff": float((hand - auto).abs().max()),
                        "max_rel_diff": float(((hand - auto).abs() / auto.abs()).max()),
                    }
                )
    return pd.DataFrame(rows)


def layer_one_gradients(net: MLP) -> dict[str, list]:
    """The homework's printout: dA_list[0] and db_list[0] from the float32 hand-written pass."""
    dA_list, db_list = manual_backward(net)
    return {"dA_1": dA_list[0].tolist(), "db_1": db_list[0].flatten().tolist()}


def results(comparison: pd.DataFrame, printed: dict[str, list]) -> dict:
    summary = {"seed": SEED, "depth": DEPTH, "width": WIDTH, **printed}
    for name in DTYPES:
        part = comparison[comparison.dtype == name]
        summary[f"max_abs_diff_{name}"] = float(part.max_abs_diff.max())
        summary[f"max_rel_diff_{name}"] = float(part.max_rel_diff.max())
        summary[f"max_rel_diff_{name}_in_eps"] = float(
            part.max_rel_diff.max() / torch.finfo(getattr(torch, name)).eps
        )
    return summary


def _table(comparison: pd.DataFrame) -> pd.DataFrame:
    """Wide report table: one row per layer and parameter, the differences per dtype."""
    wide = comparison.pivot_table(
        index=["layer", "parameter", "shape"],
        columns="dtype",
        values=["max_abs_diff", "max_rel_diff"],
    )
    wide.columns = [f"{stat} ({dtype})" for stat, dtype in wide.columns]
    return wide.reset_index()


def _figure(comparison: pd.DataFrame, stem: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    # exact agreement (a difference of 0) is drawn a decade below the smallest non-zero one
    diffs = comparison[["max_abs_diff", "max_rel_diff"]].to_numpy()
    floor = diffs[diffs > 0].min() / 10 if (diffs > 0).any() else 1e-18
    for ax, param in zip(axes, ("A", "b"), strict=True):
        for offset, (name, marker) in zip(
            (-0.15, 0.15), (("float32", "o"), ("float64", "s")), strict=True
        ):
            part = comparison[(comparison.parameter == param) & (comparison.dtype == name)]
            x, rel, diff = part.layer + offset, part.max_rel_diff, part.max_abs_diff
            ax.scatter(x, rel.clip(lower=floor), marker=marker, label=f"{name} (relative)")
            hollow = {"facecolors": "none", "edgecolors": f"C{2 + (name == 'float64')}"}
            ax.scatter(
                x, diff.clip(lower=floor), marker=marker, label=f"{name} (absolute)", **hollow
            )
        ax.set(yscale="log", xlabel="layer $\\ell$", title=f"gradient w.r.t. $\\ell$-th {param}")
        ax.axhline(torch.finfo(torch.float32).eps, color="grey", ls="--", lw=0.8)
        ax.axhline(torch.finfo(torch.float64).eps, color="grey", ls=":", lw=0.8)
    axes[0].set_ylabel("max |hand-written - autograd|")
    axes[1].legend(fontsize="small", loc="center right")
    save_figure(fig, stem)


def write_backprop(
    results_json: str | Path,
    comparison_csv: str | Path,
    table_csv: str | Path,
    gradients_csv: str | Path,
    figure_png: str | Path,
) -> dict:
    """Run problem 1 and write its results, tables and figure (PNG and PDF)."""
    net = draw_problem()
    comparison = compare(net)
    printed = layer_one_gradients(net)
    summary = results(comparison, printed)
    log.info(
        "max abs diff float32 %.3e, float64 %.3e",
        summary["max_abs_diff_float32"],
        summary["max_abs_diff_float64"],
    )
    Path(results_json).write_text(json.dumps(summary, indent=2))
    comparison.to_csv(comparison_csv, index=False)
    _table(comparison).to_csv(table_csv, index=False)
    dA, db = printed["dA_1"], printed["db_1"]
    pd.DataFrame(
        [
            {
                "row i": r + 1,
                **{f"dA_1[i, {c + 1}]": float(dA[r][c]) for c in range(WIDTH)},
                "db_1[i]": float(db[r]),
            }
            for r in range(WIDTH)
        ]
    ).to_csv(gradients_csv, index=False)
    _figure(comparison, Path(figure_png).with_suffix(""))
    return summary
