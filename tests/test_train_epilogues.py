"""training.conv_bias: triton (hw5repro.train_epilogues), run on the CPU in Triton's interpreter:
the forward and every gradient but the biases' are those of conv_bias: after_pool bit for bit (the
bias gradients within rounding: another order of the sum)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_same_metrics, count_calls, train_twice
from hw5repro import eval_kernels, train_epilogues
from hw5repro.model import (
    AlexNet,
    GemmBiasConv2d,
    add_bias,
    conv_bias_used,
    forward_bias_after_pool,
)

DTYPES = [torch.float32, torch.bfloat16]


def _activation(dtype, n=2, c=40, size=23, seed=0):
    """A convolution's output (channels_last; 40 channels and these sizes leave partial blocks),
    its bias and a gradient for the epilogue's output. In bf16 many windows hold ties."""
    gen = torch.Generator().manual_seed(seed)
    out = (torch.randn(n, c, size, size, generator=gen) * 3).to(dtype)
    out = out.contiguous(memory_format=torch.channels_last)
    bias = torch.randn(c, generator=gen)
    pooled = (size - 3) // 2 + 1
    grad = torch.randn(n, c, pooled, pooled, generator=gen).to(dtype)
    return out, bias, grad


def _pool_grad_reference(grad, indices, size):
    """The max-pool's input gradient from PyTorch's indices as PyTorch's CUDA kernel gathers it:
    each window's gradient added to its max in fp32, windows in order (row, then column; the
    CPU's scatter adds in the order of the source), rounded once to the dtype."""
    flat = torch.zeros(size[0], size[1], size[2] * size[3])
    flat.scatter_add_(2, indices.flatten(2), grad.float().flatten(2))
    return flat.view(size).to(grad.dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pooled_epilogue_and_its_gradients_are_pytorchs(interpreted, dtype):
    out, bias, grad = _activation(dtype)
    b = bias.to(dtype).view(1, -1, 1, 1)
    pooled, indices = F.max_pool2d(out, 3, 2, return_indices=True)
    expected = torch.relu(pooled + b)
    y, arg = eval_kernels.pool_bias_relu_argmax(out, bias)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    # each max's place in its window is the one PyTorch picks (the first largest; bf16 has ties)
    oh = torch.arange(11).view(1, 1, 11, 1)
    ow = torch.arange(11).view(1, 1, 1, 11)
    place = (indices // 23 - 2 * oh) * 3 + (indices % 23 - 2 * ow)
    assert torch.equal(arg.long(), place)
    ties = F.unfold(out.float(), 3, stride=2) == pooled.float().flatten(2).repeat_interleave(9, 1)
    if dtype == torch.bfloat16:
        assert ties.view(2, 40, 9, -1).sum(2).gt(1).any()  # the tie rule was exercised
    # the ReLU's gradient (0 where the output is <= 0) and the bias gradient
    g, gb = train_epilogues.relu_grad(grad, y)
    torch.testing.assert_close(g, torch.where(y <= 0, 0, grad), rtol=0, atol=0)
    torch.testing.assert_close(gb.double(), g.double().sum((0, 2, 3)), rtol=1e-5, atol=1e-5)
    # the pool's gradient: gathered in fp32, rounded once
    gx = train_epilogues.pool_grad(g, arg, out.shape)
    assert gx.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(gx, _pool_grad_reference(g, indices, out.shape), rtol=0, atol=0)
    assert (gx != 0).sum() > 0 and (gx == 0).sum() > 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_networks_features_train_as_with_the_bias_after_the_pool(
    interpreted, monkeypatch, dtype
):
    """AlexNet(conv_bias="triton") in the interpreter against conv_bias: after_pool as it runs
    on CUDA (hw5repro.model.forward_bias_after_pool, each bias added after its convolution by
    add_bias), with the same weights: the same features bit for bit; in fp32 the same weight
    gradients bit for bit too, the bias gradients within rounding. (In bf16 PyTorch's CPU
    max-pool backward rounds a pixel's gradient from overlapping windows otherwise than its CUDA
    kernel, which the kernels follow bit for bit: the test above; so there all gradients are
    compared within bf16 rounding.)"""

    def as_on_cuda(self, x):  # GemmBiasConv2d's CUDA path (the CPU's oneDNN adds the bias inside)
        return add_bias(self._conv_forward(x, self.weight, None), self.bias)

    monkeypatch.setattr(GemmBiasConv2d, "forward", as_on_cuda)
    torch.manual_seed(0)
    cl = torch.channels_last
    ours = AlexNet(width=0.25, conv_bias="triton").to(dtype).to(memory_format=cl)
    plain = AlexNet(width=0.25, conv_bias="after_pool").to(dtype).to(memory_format=cl)
    plain.load_state_dict(ours.state_dict())
    x = torch.rand(3, 1, 28, 28).to(dtype).contiguous(memory_format=cl)
    grad = torch.randn(3, 64, 5, 5).to(dtype)
    mine, theirs = ours.features(x), forward_bias_after_pool(plain.features, x)
    torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
    assert (mine > 0).any() and (mine == 0).any()
    mine.backward(grad)
    theirs.backward(grad)
    fp32 = dtype == torch.float32
    for (name, p), q in zip(ours.named_parameters(), plain.parameters(), strict=True):
        if not name.startswith("features"):
            continue
        exact = fp32 and name.endswith("weight")
        tol = 0 if exact else 1e-5 if fp32 else 2e-2 * q.grad.abs().max().item()
        torch.testing.assert_close(p.grad, q.grad, rtol=0 if exact else 1e-2, atol=tol, msg=name)
    with torch.inference_mode():  # evaluation: the same kernels' forward, no indices kept
        torch.testing.assert_close(ours.features(x), mine.detach(), rtol=0, atol=0)


def test_training_runs_the_epilogues_and_learns_what_pytorchs_passes_learn(
    interpreted, monkeypatch
):
    """conv_bias: triton reaches the network: training and evaluation run the kernels (here in
    the interpreter), the run's record says so, and the metrics are those of PyTorch's passes
    within fp32 rounding (oneDNN adds the biases inside its convolutions on the CPU)."""
    calls = count_calls(monkeypatch, train_epilogues, "relu_grad", "pool_grad")
    (plain, plain_info), (ours, info) = train_twice(8, conv_bias="triton")
    assert (plain_info["conv_bias"], info["conv_bias"]) == ("add", "triton")
    # the second training's one step, with six ReLU gradients (two of them pooled)
    assert calls == {"relu_grad": 6, "pool_grad": 2}
    assert_same_metrics(plain, ours, rel=1e-4, abs=1e-5)


def test_conv_bias_triton_outside_the_interpreter_is_the_plain_network(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(train_epilogues, "_kernels", lambda: pytest.fail("the kernels ran"))
    torch.manual_seed(0)
    ours, plain = AlexNet(width=0.25, conv_bias="triton").eval(), AlexNet(width=0.25).eval()
    plain.load_state_dict(ours.state_dict())
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(ours(x), plain(x))
    assert conv_bias_used(ours, torch.device("cpu")) == "add"
    assert conv_bias_used(ours, torch.device("cuda")) == "triton"


def test_fused_runs_train_through_the_epilogues_as_through_pytorchs_passes(
    interpreted, monkeypatch
):
    """conv_bias: triton reaches a fused network (runs_per_job > 1): its grouped convolutions'
    bias, ReLU and max-pool run as the kernels (per channel, so each run's block alone), the
    job's record says so, and every run's metrics are those of the fused network with PyTorch's
    passes within fp32 rounding."""
    from dataclasses import replace

    from test_fused import _close, _run_datas
    from test_training import small_settings

    from hw5repro.training import train_runs

    calls = count_calls(monkeypatch, train_epilogues, "relu_grad", "pool_grad")
    datas = [replace(d, test_x=d.test_x[:8], test_y=d.test_y[:8]) for d in _run_datas(k=2, n=8)]
    settings = small_settings(epochs=1, batch_size=8, channels_last=True, dropout=0.0)
    plain, _, plain_info = train_runs(datas, settings, [0, 1], progress=False)
    assert calls == {"relu_grad": 0, "pool_grad": 0}
    ours, models, info = train_runs(
        datas, replace(settings, conv_bias="triton"), [0, 1], progress=False
    )
    assert (plain_info["conv_bias"], info["conv_bias"]) == ("add", "triton")
    assert info["runs_fused"] == 2 and info["model"]["conv_bias"] == "triton"
    # one fused step: six ReLU gradients (two of them pooled), each over both runs' channels
    assert calls == {"relu_grad": 6, "pool_grad": 2}
    for a, b in zip(plain, ours, strict=True):
        _close(a, b)  # (rel 1e-4, abs 1e-5; run 0 has no wrong label: its accuracy on them is NaN)
    assert all(m.features.triton_epilogues for m in models)  # each run's own network, as built
