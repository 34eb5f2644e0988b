"""Problem 3: Form I, Form II and torch.optim.SGD(momentum) give the same iterates."""

import pytest
import torch

from hw5repro import momentum


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


def test_gradients_are_taken_at_each_forms_own_iterate():
    """A different beta in Form II gives different iterates: the check is not vacuous."""
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
