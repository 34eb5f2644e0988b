"""K runs in one job, fused in one network or side by side (``training.group_form``), train
exactly as the K runs trained one by one."""

import contextlib
import math

import pytest
import torch

from hw5repro.fused import FusedAlexNet, fused_minibatch_loss
from hw5repro.model import AlexNet
from hw5repro.sgd import SGD
from hw5repro.steps import EagerStep, minibatch_loss, run_epoch
from hw5repro.training import METRIC_COLUMNS


def runs_data(k=3, n=96):
    """Each run its own inputs (one clean, one shuffled-pixel-like, one Gaussian) and labels."""
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(n, 28, 28, generator=g)
    inputs = [clean, clean.flatten(1)[:, torch.randperm(784, generator=g)].view(n, 28, 28)]
    inputs += [torch.randn(n, 28, 28, generator=g) for _ in range(k - 2)]
    labels = torch.randint(0, 10, (k, n), generator=g)
    return torch.stack(inputs), labels


def models(k, width=0.125, dropout=0.0, init="default"):
    out = []
    for seed in range(k):
        torch.manual_seed(100 + seed)
        out.append(AlexNet(width=width, dropout=dropout, init=init))
    return out


def test_fused_forward_is_the_separate_forwards():
    nets = models(3, init="kaiming")
    fused = FusedAlexNet(nets).eval()
    x, _ = runs_data()
    out = fused(x[:, :16].transpose(0, 1).contiguous())
    for k, net in enumerate(nets):
        expected = net.eval()(x[k, :16].unsqueeze(1))
        assert torch.allclose(out[k], expected, rtol=1e-4, atol=1e-5)
    for k, net in enumerate(nets):  # unfused weights are the run's own
        for name, value in net.state_dict().items():
            assert torch.equal(fused.unfused(k)[name], value), name


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_fused_steps_equal_separate_steps_in_float32(momentum):
    """Three runs with different inputs and labels, own permutations, batch 32 over 96 + a
    smaller last batch (100 = 3 x 32 + 4): same per-step losses and weights after 2 epochs."""
    k, n, batch = 3, 100, 32
    x, y = runs_data(k, n)
    nets = models(k)
    fused = FusedAlexNet(nets)
    separate = []
    for i, net in enumerate(nets):
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=momentum)
        loss = minibatch_loss(net, x[i].unsqueeze(1), y[i], contextlib.nullcontext)
        gen = torch.Generator().manual_seed(i)
        separate.append(
            torch.cat([run_epoch(EagerStep(net, opt, loss), n, batch, gen) for _ in range(2)])
        )
    opt = SGD(fused.parameters(), lr=0.05, momentum=momentum)  # the workflow's (FusedRuns)
    loss = fused_minibatch_loss(fused, x, y, contextlib.nullcontext, torch.contiguous_format)
    gens = [torch.Generator().manual_seed(i) for i in range(k)]
    step = EagerStep(fused, opt, loss)
    fused_losses = torch.cat([run_epoch(step, n, batch, gens) for _ in range(2)])
    assert fused_losses.shape == (8, k)
    assert torch.allclose(fused_losses, torch.stack(separate, 1), rtol=1e-4, atol=1e-5)
    for i, net in enumerate(nets):
        assert_same_weights(fused.unfused(i), net.state_dict())


def assert_same_weights(a: dict, b: dict):
    """Weights to 0.1 % of each tensor's scale: grouped and plain convolutions sum in other
    orders, and momentum carries the float32 differences on (an AMD EPYC's oneDNN kernels put a
    bias of 0.005 off by 1.8e-5 after 8 steps); another run's weights are off by their size."""
    assert list(a) == list(b)
    for name, value in b.items():
        scale = 1e-3 * value.abs().max()
        assert torch.allclose(a[name], value, rtol=1e-3, atol=scale), name


def _run_datas(k=3, n=100):
    from hw5repro.training import RunData

    x, y = runs_data(k, n)
    g = torch.Generator().manual_seed(1)
    mislabelled = torch.rand(k, n, generator=g) < torch.tensor([[0.0], [0.5], [1.0]])[:k]
    tx, ty = torch.rand(k, 40, 28, 28, generator=g), torch.randint(0, 10, (k, 40), generator=g)
    return [
        RunData(x[i].unsqueeze(1), y[i], mislabelled[i], tx[i].unsqueeze(1), ty[i])
        for i in range(k)
    ]


def _settings(**kw):
    """test_training's small CPU settings, with momentum and without dropout (fused runs then
    compute exactly what they compute alone)."""
    from test_training import small_settings

    return small_settings(
        **{"epochs": 3, "momentum": 0.9, "dropout": 0.0, "eval_batch_size": 64, **kw}
    )


NUMERIC = [c for c in METRIC_COLUMNS if c not in {"epoch", "epoch_seconds", "eval_seconds"}]


def _close(rows_a, rows_b):
    for a, b in zip(rows_a, rows_b, strict=True):
        assert a["epoch"] == b["epoch"]
        for key in NUMERIC:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5, nan_ok=True), key


def test_train_runs_fused_gives_each_run_its_separate_metrics_and_model():
    from hw5repro.training import train, train_runs

    datas, seeds = _run_datas(), [0, 1, 2]
    fused, models, info = train_runs(datas, _settings(), seeds, progress=False)
    assert info["runs_fused"] == 3 and len(fused) == 3
    for data, seed, rows, model in zip(datas, seeds, fused, models, strict=True):
        alone, alone_model, _ = train(data, _settings(), seed, progress=False)
        _close(rows, alone)
        assert_same_weights(model.state_dict(), alone_model.state_dict())
    assert math.isnan(fused[0][0]["train_acc_mislabelled"])  # no wrong labels in this run


def test_runs_side_by_side_train_bit_for_bit_as_alone():
    """group_form: streams on a CPU: each run's steps are the single run's, one run after the
    other, so its weights, accuracies and test losses are the ones it gets alone, bit for bit
    (the epoch's mean training loss is reduced over (steps, K) instead of (steps,): to 1e-6)."""
    from hw5repro.training import train, train_runs

    datas, seeds = _run_datas(), [0, 1, 2]
    side, models, info = train_runs(datas, _settings(group_form="streams"), seeds, progress=False)
    assert info["runs_fused"] == 3 and info["group_form"] == "streams"
    for data, seed, rows, model in zip(datas, seeds, side, models, strict=True):
        alone, alone_model, alone_info = train(data, _settings(), seed, progress=False)
        assert alone_info["group_form"] is None
        for a, b in zip(rows, alone, strict=True):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
            for key in set(NUMERIC) - {"train_loss"}:
                assert a[key] == b[key] or math.isnan(a[key]) and math.isnan(b[key]), key
        for (name, value), other in zip(
            model.state_dict().items(), alone_model.state_dict().values(), strict=True
        ):
            assert torch.equal(value, other), name


@pytest.mark.parametrize("form", ["fused", "streams"])
def test_group_checkpoints_resume_together_or_alone(tmp_path, form):
    """Each run of a group writes its own checkpoint in a single run's format: the group
    resumes from them, and so does one run alone."""
    from hw5repro.training import train, train_runs

    datas, seeds = _run_datas(), [0, 1, 2]
    kw = dict(group_form=form)
    straight, _, _ = train_runs(datas, _settings(epochs=4, **kw), seeds, progress=False)
    paths = [tmp_path / f"r{i}.pt" for i in range(3)]
    train_runs(datas, _settings(epochs=2, **kw), seeds, paths, progress=False)
    assert [torch.load(p, weights_only=True)["epoch"] for p in paths] == [2, 2, 2]
    single = tmp_path / "alone.pt"
    single.write_bytes(paths[1].read_bytes())
    resumed, _, info = train_runs(datas, _settings(epochs=4, **kw), seeds, paths, progress=False)
    assert info["resumed_from_epoch"] == 2
    for a, b in zip(resumed, straight, strict=True):
        _close(a, b)
    alone, _, info = train(datas[1], _settings(epochs=4), 1, single, progress=False)
    assert info["resumed_from_epoch"] == 2
    _close(alone, straight[1])


# bf16 on a CPU is slow (40 s here): the fused form in bf16, the streams form in fp32
@pytest.mark.parametrize("form, precision", [("fused", "bf16"), ("streams", "fp32")])
def test_group_channels_last_with_dropout_resumes_exactly(tmp_path, form, precision):
    """channels_last and dropout 0.5 (the runs' masks come from one shared stream), fused in
    bf16 autocast or side by side in fp32: two epochs, a checkpoint and two more equal four
    epochs straight, run by run."""
    from hw5repro.training import train_runs

    datas, seeds = _run_datas(), [0, 1, 2]
    kw = dict(precision=precision, channels_last=True, dropout=0.5, group_form=form)
    straight, _, info = train_runs(datas, _settings(epochs=4, **kw), seeds, progress=False)
    assert info["precision"] == precision and info["channels_last"] is True
    paths = [tmp_path / f"r{i}.pt" for i in range(3)]
    train_runs(datas, _settings(epochs=2, **kw), seeds, paths, progress=False)
    resumed, _, info = train_runs(datas, _settings(epochs=4, **kw), seeds, paths, progress=False)
    assert info["resumed_from_epoch"] == 2
    for a, b in zip(resumed, straight, strict=True):
        for row_a, row_b in zip(a, b, strict=True):
            for key in NUMERIC:
                assert row_a[key] == pytest.approx(row_b[key], abs=0, nan_ok=True), key
    losses = [row["train_loss"] for row in straight[0]]
    assert all(0 < loss < 10 for loss in losses)  # finite and sane
