"""Problem 1: the hand-written backward pass reproduces the seed's printout and autograd."""

import pytest
import torch

from hw5repro.problems import backprop

# The seed's printed dA_list[0] and db_list[0] (5 significant digits).
PRINTED_DA1 = [
    ["2.3943e-05", "3.7064e-05", "4.2687e-06", "6.3700e-06"],
    ["3.4104e-05", "5.2794e-05", "6.0804e-06", "9.0735e-06"],
    ["2.4438e-05", "3.7831e-05", "4.3571e-06", "6.5019e-06"],
    ["2.0187e-05", "3.1250e-05", "3.5991e-06", "5.3707e-06"],
]
PRINTED_DB1 = ["4.8247e-05", "6.8722e-05", "4.9245e-05", "4.0678e-05"]


def _printed(tensor: torch.Tensor) -> list:
    return (
        [f"{v:.4e}" for v in tensor.tolist()]
        if tensor.dim() == 1
        else [_printed(row) for row in tensor]
    )


@pytest.fixture(scope="module")
def net():
    return backprop.draw_problem()


def test_draw_follows_the_seed_order(net):
    torch.manual_seed(0)
    assert torch.equal(net.X, torch.rand(4, 1))
    assert torch.equal(net.Y, torch.rand(1, 1))
    assert [a.shape for a in net.A] == [(4, 4)] * 5 + [(1, 4)]
    assert [b.shape for b in net.b] == [(4, 1)] * 5 + [(1, 1)]


def test_hand_written_pass_reproduces_the_seed_printout(net):
    dA, db = backprop.manual_backward(net)
    assert db[0].shape == (1, 4)  # the seed's db is a row vector
    assert _printed(dA[0]) == PRINTED_DA1
    assert _printed(db[0].flatten()) == PRINTED_DB1


def test_autograd_reproduces_the_seed_printout(net):
    dA, db = backprop.autograd_backward(net)
    assert db[0].shape == (4, 1)  # autograd keeps b's column shape
    assert _printed(dA[0]) == PRINTED_DA1
    assert _printed(db[0].flatten()) == PRINTED_DB1


def test_hand_written_matches_autograd_per_layer(net):
    table = backprop.compare(net)
    assert len(table) == 2 * 2 * backprop.DEPTH  # dtypes x {A, b} x layers
    f32, f64 = table[table.dtype == "float32"], table[table.dtype == "float64"]
    assert (f64.max_rel_diff <= 1e-14).all()
    assert (f32.max_rel_diff <= 1e-6).all()
    assert (f32.max_abs_diff <= 1e-7 * f32.max_abs_grad).all()
    assert (table.max_abs_grad > 0).all()
    summary = backprop.results(table, backprop.layer_one_gradients(net))
    assert summary["max_rel_diff_float64_in_eps"] == f64.max_rel_diff.max() / 2.0**-52
    assert summary["max_rel_diff_float32_in_eps"] == f32.max_rel_diff.max() / 2.0**-23
    assert 0 < summary["max_rel_diff_float64_in_eps"] < 10  # a few units of rounding


def test_exact_agreement_is_drawn_below_every_non_zero_difference(net, tmp_path, monkeypatch):
    """The figure's floor for a difference of 0 lies under the smallest non-zero difference."""
    table = backprop.compare(net)
    drawn, scatter = [], backprop.plt.Axes.scatter
    monkeypatch.setattr(
        backprop.plt.Axes,
        "scatter",
        lambda ax, x, y, **kw: drawn.append(list(y)) or scatter(ax, x, y, **kw),
    )
    backprop._figure(table, tmp_path / "figure")
    values = [v for ys in drawn for v in ys]
    smallest = table[["max_abs_diff", "max_rel_diff"]].to_numpy()
    smallest = smallest[smallest > 0].min()
    assert (table.max_abs_diff == 0).any()  # exact agreement occurs
    assert min(values) == smallest / 10 and sorted(set(values))[1] == smallest


def test_a_wrong_backward_pass_is_detected(net, monkeypatch):
    """compare() can fail: a hand-written pass without sigma' (a slope of 1 everywhere) is off
    by more than 100 % in every layer that has a sigmoid, and exact only in the linear last one."""
    monkeypatch.setattr(backprop, "sigmoid_prime", torch.ones_like)
    table = backprop.compare(net)
    hidden = table[table.layer < backprop.DEPTH]
    assert (hidden.groupby(["dtype", "layer"]).max_rel_diff.max() > 1.0).all()
    last = table[table.layer == backprop.DEPTH]
    assert (last.max_rel_diff <= 1e-6).all()
