"""Problem 2: the chain-rule product and the three causes of vanishing gradients."""

import pandas as pd
import pytest
import torch

from hw5repro.problems import vanishing_gradients as vg


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    x, nets = vg.scenarios()
    return vg.layer_table(x, nets)


def _norms(table, key: str, column: str = "grad_b_norm") -> pd.Series:
    name = next(s for s in table.scenario.unique() if key(s))
    return table[table.scenario == name].set_index("layer")[column]


def test_chain_rule_product_equals_autograd(table):
    assert len(table) == 4 * vg.DEPTH
    assert table.product_rel_error.max() < 1e-12


def test_weight_gradient_is_outer_product_with_previous_output():
    x, nets = vg.scenarios()
    net = nets["sigmoid"]
    _, ys = vg.forward(net, x)
    dA, db = vg.autograd_gradients(net, x)
    for i in range(vg.DEPTH):
        torch.testing.assert_close(dA[i], torch.outer(db[i], ys[i]), rtol=1e-12, atol=0)


def test_sigmoid_gradients_shrink_towards_the_input(table):
    sigmoid = _norms(table, lambda s: s == "sigmoid")
    assert (sigmoid.diff().dropna() > 0).all()  # monotone growth from layer 1 to L
    assert sigmoid[1] / sigmoid[vg.DEPTH - 1] < 1e-4
    assert sigmoid[1] < 1e-5


def test_small_weight_matrix_attenuates_layers_below_it(table):
    j = vg.PERTURBED_LAYER
    ratio = _norms(table, lambda s: " x " in s) / _norms(table, lambda s: s == "sigmoid")
    assert (ratio[ratio.index < j] < 10 * vg.SMALL_SCALE).all()
    assert (ratio[ratio.index < j] > 0.1 * vg.SMALL_SCALE).all()
    above = ratio[ratio.index >= j]
    assert ((above > 0.8) & (above < 1.25)).all()  # only sigma' changes there, by < 25 %
    low, high = vg.results(table)["small_A_ratio_to_sigmoid_from_perturbed_layer"]
    assert (low, high) == (above.min(), above.max()) and high > 1  # sigma' nearer its 1/4


def test_saturated_layer_attenuates_itself_and_layers_below(table):
    j = vg.PERTURBED_LAYER
    ratio = _norms(table, lambda s: "saturated" in s) / _norms(table, lambda s: s == "sigmoid")
    assert (ratio[ratio.index <= j] < 1e-3).all()
    assert ((ratio[ratio.index > j] > 0.5) & (ratio[ratio.index > j] < 2)).all()
    saturated = table[table.scenario.str.contains("saturated") & (table.layer == j)]
    assert float(saturated.min_sigma_prime.iloc[0]) < 1e-4


def test_relu_keeps_gradients_alive(table):
    relu = _norms(table, lambda s: s == "relu")
    sigmoid = _norms(table, lambda s: s == "sigmoid")
    assert relu[1] > 1e4 * sigmoid[1]
    assert relu[1] / relu[vg.DEPTH - 1] > 0.1


def test_results_summarise_the_table(table):
    summary = vg.results(table)
    assert summary["grad_b1_ratio_to_sigmoid_small_A"] < 10 * vg.SMALL_SCALE
    assert summary["grad_b1_ratio_to_sigmoid_saturated"] < 1e-3
    assert summary["grad_b1_ratio_to_sigmoid_relu"] > 1e4
    assert summary["sigmoid_mean_decay_per_layer"] < 0.5 < summary["relu_mean_decay_per_layer"]
