"""Problem 3: the two forms of SGD with (heavy-ball) momentum produce the same iterates.

Form I:  theta_{k+1} = theta_k - alpha g_k + beta (theta_k - theta_{k-1}),  theta_{-1} = theta_0.
Form II: v_{k+1} = g_k + beta v_k,  theta_{k+1} = theta_k - alpha v_{k+1},   v_0 = 0.

Both are driven by stochastic gradients g_k of an L2-regularised logistic regression on synthetic
data, each evaluated at the form's own iterate on the same minibatch sequence, and compared with
torch.optim.SGD(momentum=beta) in float64.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from ..plotting import save_figure

log = logging.getLogger(__name__)

SEED = 0
SAMPLES = 1024
FEATURES = 20
BATCH_SIZE = 32
STEPS = 2000
ALPHA = 0.05
BETA = 0.9
WEIGHT_DECAY = 1e-3
DTYPE = torch.float64


def synthetic_data(seed: int = SEED):
    """Features, 0/1 labels from a noisy linear teacher, and the minibatch index sequence."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(SAMPLES, FEATURES, generator=gen, dtype=DTYPE)
    teacher = torch.randn(FEATURES, generator=gen, dtype=DTYPE)
    noise = torch.randn(SAMPLES, generator=gen, dtype=DTYPE)
    y = ((X @ teacher + noise) > 0).to(DTYPE)
    batches = torch.randint(0, SAMPLES, (STEPS, BATCH_SIZE), generator=gen)
    return X, y, batches


def objective(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss plus (WEIGHT_DECAY / 2) ||theta||^2."""
    logits = X @ theta
    data = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    return data + 0.5 * WEIGHT_DECAY * theta @ theta


def stochastic_gradient(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the objective on one minibatch (closed form)."""
    return X.T @ (torch.sigmoid(X @ theta) - y) / len(y) + WEIGHT_DECAY * theta


def form_one(theta0, X, y, batches, alpha=ALPHA, beta=BETA) -> torch.Tensor:
    """Iterates theta_0..theta_K of Form I (rows)."""
    thetas = [theta0.clone()]
    previous = theta0.clone()  # theta_{-1} = theta_0
    for batch in batches:
        current = thetas[-1]
        g = stochastic_gradient(current, X[batch], y[batch])
        thetas.append(current - alpha * g + beta * (current - previous))
        previous = current
    return torch.stack(thetas)


def form_two(theta0, X, y, batches, alpha=ALPHA, beta=BETA) -> torch.Tensor:
    """Iterates theta_0..theta_K of Form II (rows)."""
    thetas = [theta0.clone()]
    v = torch.zeros_like(theta0)  # v_0 = 0
    for batch in batches:
        g = stochastic_gradient(thetas[-1], X[batch], y[batch])
        v = g + beta * v
        thetas.append(thetas[-1] - alpha * v)
    return torch.stack(thetas)


def torch_sgd(theta0, X, y, batches, alpha=ALPHA, beta=BETA) -> torch.Tensor:
    """Iterates of torch.optim.SGD(lr=alpha, momentum=beta) with autograd gradients."""
    theta = theta0.clone().requires_grad_()
    optimiser = torch.optim.SGD([theta], lr=alpha, momentum=beta)
    thetas = [theta0.clone()]
    for batch in batches:
        optimiser.zero_grad()
        objective(theta, X[batch], y[batch]).backward()
        optimiser.step()
        thetas.append(theta.detach().clone())
    return torch.stack(thetas)


@contextmanager
def single_thread() -> Iterator[None]:
    """One intra-op thread: on tiny tensors more threads only add overhead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def trajectories(seed: int = SEED) -> pd.DataFrame:
    """Per step k: Form I's full-data objective and the pairwise gaps max_i |theta_a - theta_b|."""
    X, y, batches = synthetic_data(seed)
    theta0 = torch.zeros(FEATURES, dtype=DTYPE)
    with single_thread():
        one = form_one(theta0, X, y, batches)
        two = form_two(theta0, X, y, batches)
        sgd = torch_sgd(theta0, X, y, batches)
        with torch.no_grad():
            losses = [float(objective(t, X, y)) for t in one]
    return pd.DataFrame(
        {
            "step": range(len(one)),
            "objective_form_I": losses,
            "gap_I_II": (one - two).abs().amax(dim=1).tolist(),
            "gap_I_torch": (one - sgd).abs().amax(dim=1).tolist(),
            "gap_II_torch": (two - sgd).abs().amax(dim=1).tolist(),
            "theta_norm": one.norm(dim=1).tolist(),
        }
    )


def results(steps: pd.DataFrame) -> dict:
    return {
        "seed": SEED,
        "samples": SAMPLES,
        "features": FEATURES,
        "batch_size": BATCH_SIZE,
        "steps": int(steps.step.max()),
        "alpha": ALPHA,
        "beta": BETA,
        "weight_decay": WEIGHT_DECAY,
        "dtype": str(DTYPE).removeprefix("torch."),
        "max_gap_form_I_II": float(steps.gap_I_II.max()),
        "max_gap_form_I_torch": float(steps.gap_I_torch.max()),
        "max_gap_form_II_torch": float(steps.gap_II_torch.max()),
        "max_theta_norm": float(steps.theta_norm.max()),
        "objective_initial": float(steps.objective_form_I.iloc[0]),
        "objective_final": float(steps.objective_form_I.iloc[-1]),
        "exact_zero_steps_I_II": int((steps.gap_I_II == 0).sum()),
        "max_gap_I_II_first_10_steps": float(steps.gap_I_II.iloc[:11].max()),
        "max_gap_I_II_first_half": float(steps.gap_I_II.iloc[: len(steps) // 2].max()),
        "max_gap_I_II_second_half": float(steps.gap_I_II.iloc[len(steps) // 2 :].max()),
    }


def _table(summary: dict) -> pd.DataFrame:
    pairs = (
        ("Form I vs Form II", "max_gap_form_I_II"),
        ("Form I vs torch.optim.SGD", "max_gap_form_I_torch"),
        ("Form II vs torch.optim.SGD", "max_gap_form_II_torch"),
    )
    rows = [(label, summary["steps"], float(summary[key])) for label, key in pairs]
    return pd.DataFrame(rows, columns=["comparison", "steps", "max |theta_a - theta_b|"])


def _figure(steps: pd.DataFrame, stem: Path) -> None:
    floor = 1e-20  # exact agreement (gap 0) is drawn on the bottom of the log axis
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(steps.step, steps.objective_form_I)
    left.set(
        xlabel="step $k$",
        ylabel="objective (full data)",
        yscale="log",
        title=rf"(a) logistic regression, $\alpha$={ALPHA:g}, $\beta$={BETA:g}",
    )
    for column, label, style in (
        ("gap_I_II", "Form I vs Form II", {"lw": 2.0}),
        ("gap_I_torch", "Form I vs torch SGD", {"lw": 0.9, "ls": "--"}),
        ("gap_II_torch", "Form II vs torch SGD", {"lw": 0.9}),
    ):
        right.plot(steps.step, steps[column].clip(lower=floor), label=label, **style)
    right.axhline(1e-12, color="black", ls="--", lw=0.8, label="tolerance $10^{-12}$")
    right.set(
        xlabel="step $k$",
        ylabel=r"$\max_i |\theta_a - \theta_b|$",
        yscale="log",
        ylim=(floor / 3, 1e-10),
        title="(b) gap between the iterates (float64)",
    )
    right.legend(fontsize="small", loc="upper left")
    save_figure(fig, stem)


def write_momentum(
    results_json: str | Path, steps_csv: str | Path, table_csv: str | Path, figure_png: str | Path
) -> dict:
    """Run problem 3 and write its results, tables and figure (PNG and PDF)."""
    steps = trajectories()
    summary = results(steps)
    log.info(
        "max gaps: I-II %.2e, I-torch %.2e",
        summary["max_gap_form_I_II"],
        summary["max_gap_form_I_torch"],
    )
    Path(results_json).write_text(json.dumps(summary, indent=2))
    steps.to_csv(steps_csv, index=False)
    _table(summary).to_csv(table_csv, index=False)
    _figure(steps, Path(figure_png).with_suffix(""))
    return summary
