"""Problem 3: Form I, Form II and torch.optim.SGD(momentum) give the same iterates."""

import pytest
import torch

from hw5repro.problems import momentum


@pytest.fixture(scope="module")
def steps():
    return momentum.trajectories()


def test_forms_agree_to_1e12_over_at_least_1000_steps(steps):
    assert steps.step.max() >= 1000
    assert steps.gap_I_II.max() <= 1e-12
    assert steps.gap_I_torch.max() <= 1e-12
    assert steps.gap_II_torch.max() <= 1e-12


def test_base_case_is_exact(steps):
    assert steps.gap_I_II.iloc[0] == 0 and steps.gap_I_II.iloc[1] == 0


def test_the_optimisation_makes_progress(steps):
    assert steps.objective_form_I.iloc[0] == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert steps.objective_form_I.iloc[-1] < 0.5 * steps.objective_form_I.iloc[0]
    assert steps.theta_norm.max() > 1  # the iterates move far from theta_0 = 0


def test_gradients_are_taken_at_each_forms_own_iterate(monkeypatch):
    """Each form evaluates g_k at its own theta_k, bit for bit, not at the other form's."""
    X, y, batches = momentum.synthetic_data()
    theta0 = torch.zeros(momentum.FEATURES, dtype=momentum.DTYPE)
    seen = []
    gradient = momentum.stochastic_gradient
    monkeypatch.setattr(
        momentum,
        "stochastic_gradient",
        lambda theta, Xb, yb: seen.append(theta.clone()) or gradient(theta, Xb, yb),
    )
    for form in (momentum.form_one, momentum.form_two):
        seen.clear()
        thetas = form(theta0, X, y, batches[:200])
        assert torch.equal(torch.stack(seen), thetas[:-1]), form.__name__
    # the two forms' iterates differ by rounding, so the check above tells them apart
    assert not torch.equal(momentum.form_one(theta0, X, y, batches[:200]), thetas)


def test_a_different_beta_gives_different_iterates():
    """The agreement of the forms is not vacuous: Form II with another beta goes elsewhere."""
    X, y, batches = momentum.synthetic_data()
    theta0 = torch.zeros(momentum.FEATURES, dtype=momentum.DTYPE)
    one = momentum.form_one(theta0, X, y, batches[:200])
    two = momentum.form_two(theta0, X, y, batches[:200], beta=0.5)
    assert (one - two).abs().max() > 1e-2


def test_closed_form_gradient_matches_autograd():
    X, y, batches = momentum.synthetic_data()
    theta = torch.randn(momentum.FEATURES, dtype=momentum.DTYPE, requires_grad=True)
    batch = batches[0]
    momentum.objective(theta, X[batch], y[batch]).backward()
    closed = momentum.stochastic_gradient(theta.detach(), X[batch], y[batch])
    torch.testing.assert_close(closed, theta.grad, rtol=1e-12, atol=1e-15)


def test_the_gap_between_the_forms_stays_at_rounding_level(steps):
    summary = momentum.results(steps)
    assert summary["max_gap_I_II_first_10_steps"] <= 1e-15
    assert summary["max_gap_I_II_first_half"] == steps.gap_I_II.iloc[: len(steps) // 2].max()
    # bounded: the second half adds less than a factor of 10 to the first half's gap
    assert summary["max_gap_I_II_second_half"] < 10 * summary["max_gap_I_II_first_half"]
    assert (
        max(summary["max_gap_I_II_first_half"], summary["max_gap_I_II_second_half"])
        == (summary["max_gap_form_I_II"])
    )
