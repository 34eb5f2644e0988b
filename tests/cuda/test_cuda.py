"""Checks that need a CUDA GPU; run by benchmarks/gpu_check.sh on a lent GPU (never in CI, which
has none: these live outside tests/ so that CI's no-skip rule does not apply to them)."""

import contextlib
import time
from dataclasses import replace

import pytest
import torch

from hw5repro.runset import build_model
from hw5repro.training import RunData, Settings, train, train_epoch
from hw5repro.training.device import resolve_device, resolve_precision
from hw5repro.training.model import AlexNet
from hw5repro.training.sgd import SGD
from hw5repro.training.steps import EagerStep, GraphedStep, batch_sizes, minibatch_loss, run_epoch

assert torch.cuda.is_available(), "benchmarks/test_cuda.py needs a CUDA GPU"


def _data(n=512):
    g = torch.Generator().manual_seed(0)
    return RunData(
        torch.rand(n, 1, 28, 28, generator=g),
        torch.randint(0, 10, (n,), generator=g),
        torch.zeros(n, dtype=torch.bool),
        torch.rand(256, 1, 28, 28, generator=g),
        torch.randint(0, 10, (256,), generator=g),
    )


def test_auto_picks_cuda_and_bf16():
    device = resolve_device("auto")
    assert device.type == "cuda"
    assert resolve_precision("auto", device) == "bf16"


def test_fp32_gpu_steps_match_cpu_steps():
    """The same fixed-order minibatch steps in fp32 (TF32 off) on CPU and GPU."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    cpu_model = AlexNet(width=0.25, dropout=0.0)
    gpu_model = AlexNet(width=0.25, dropout=0.0).cuda()
    gpu_model.load_state_dict(cpu_model.state_dict())
    data = _data(128)
    perm = torch.randperm(128, generator=torch.Generator().manual_seed(1))
    losses = []
    for model, device in ((cpu_model, "cpu"), (gpu_model, "cuda")):
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        x, y, order = data.train_x.to(device), data.train_y.to(device), perm.to(device)
        steps = []
        for i in range(0, 128, 32):
            idx = order[i : i + 32]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps.append(loss.detach().cpu())
        losses.append(torch.stack(steps))
    assert torch.allclose(losses[0], losses[1], rtol=1e-4, atol=1e-5)


def test_bf16_training_learns_and_resumes(tmp_path):
    settings = Settings(
        epochs=6,
        batch_size=64,
        lr=0.05,
        width=0.5,
        dropout=0.0,
        device="cuda",
        precision="bf16",
        checkpoint_every=3,
    )
    data = _data()
    full, _, info = train(data, settings, seed=0, progress=False)
    assert info["precision"] == "bf16" and info["channels_last"] is True
    assert full[-1]["train_loss"] < full[0]["train_loss"]
    ckpt = tmp_path / "c.pt"
    train(
        data,
        Settings(**{**settings.__dict__, "epochs": 3}),
        seed=0,
        checkpoint=ckpt,
        progress=False,
    )
    resumed, _, _ = train(data, settings, seed=0, checkpoint=ckpt, progress=False)
    assert [r["epoch"] for r in resumed] == list(range(1, 7))
    assert abs(resumed[-1]["train_loss"] - full[-1]["train_loss"]) < 1e-3


def test_train_epoch_has_no_host_sync():
    model = AlexNet(width=0.25).cuda()
    opt = SGD(model.parameters(), lr=0.01)
    data = _data(1024)
    x, y = data.train_x.cuda(), data.train_y.cuda()
    gen = torch.Generator(device="cuda").manual_seed(0)
    train_epoch(model, opt, x, y, 64, gen, contextlib.nullcontext)  # warm-up
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_epoch(model, opt, x, y, 64, gen, contextlib.nullcontext)
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 5e-4)])
def test_sgd_is_torch_optim_sgd_bit_for_bit_on_cuda(momentum, weight_decay):
    """The workflow's SGD (hw5repro.sgd) against torch.optim.SGD on CUDA tensors, where both
    take torch's foreach update: the same weights and momentum buffers, bit for bit."""
    _fp32_exact()
    torch.manual_seed(0)
    ours = AlexNet(width=0.25, dropout=0.0).cuda()
    theirs = AlexNet(width=0.25, dropout=0.0).cuda()
    theirs.load_state_dict(ours.state_dict())
    kw = dict(lr=0.05, momentum=momentum, weight_decay=weight_decay)
    optimisers = [SGD(ours.parameters(), **kw), torch.optim.SGD(theirs.parameters(), **kw)]
    data = _data(128)
    x, y = data.train_x.cuda(), data.train_y.cuda()
    for model, opt in zip((ours, theirs), optimisers, strict=True):
        for i in range(0, 128, 32):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32]).backward()
            opt.step()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)
    mine, reference = (opt.state_dict() for opt in optimisers)
    assert mine["param_groups"] == reference["param_groups"]
    for i, entry in reference["state"].items():
        assert torch.equal(mine["state"][i]["momentum_buffer"], entry["momentum_buffer"])


def _fp32_exact():
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.deterministic = True


def _steps(graphed: bool, n=200, batch=64, epochs=2, dropout=0.0, lr=0.05, momentum=0.9):
    """Per-step losses and final weights of ``epochs`` epochs, eager or graphed, fp32."""
    _fp32_exact()
    settings = Settings(epochs=epochs, batch_size=batch, lr=lr, width=0.25, dropout=dropout)
    model = build_model(settings, seed=0).cuda()
    opt = SGD(model.parameters(), lr=lr, momentum=momentum)  # the workflow's (hw5repro.sgd)
    data = _data(n)
    x, y = data.train_x.cuda(), data.train_y.cuda()
    step = EagerStep(model, opt, minibatch_loss(model, x, y, contextlib.nullcontext))
    if graphed:
        step = GraphedStep(step, batch_sizes(n, batch))
    gen = torch.Generator(device="cuda").manual_seed(0)
    losses = torch.cat([run_epoch(step, n, batch, gen) for _ in range(epochs)])
    return losses.cpu(), [p.detach().cpu() for p in model.parameters()]


def test_graphed_step_computes_what_the_eager_step_computes():
    """fp32, dropout 0, momentum: same per-step losses (incl. the last, smaller batch of
    200 = 3 x 64 + 8) and the same weights after two epochs."""
    eager_losses, eager_w = _steps(graphed=False)
    graph_losses, graph_w = _steps(graphed=True)
    assert eager_losses.shape == (8,)
    assert torch.allclose(eager_losses, graph_losses, rtol=1e-5, atol=1e-6), (
        eager_losses,
        graph_losses,
    )
    for a, b in zip(eager_w, graph_w, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_graphed_dropout_draws_fresh_masks_at_every_replay():
    """lr 0: the weights never change, so different losses on the same batch can only come from
    different dropout masks."""
    settings = Settings(epochs=1, batch_size=64, lr=0.0, width=0.25, dropout=0.5)
    model = build_model(settings, seed=0).cuda()
    opt = SGD(model.parameters(), lr=0.0)
    data = _data(64)
    loss = minibatch_loss(model, data.train_x.cuda(), data.train_y.cuda(), contextlib.nullcontext)
    step = GraphedStep(EagerStep(model, opt, loss), [64])
    idx = torch.arange(64, device="cuda")
    losses = torch.stack([step(idx).clone() for _ in range(5)]).cpu()
    assert len(set(losses.tolist())) == 5, losses


def test_graphed_epoch_has_no_host_sync():
    settings = Settings(epochs=1, batch_size=64, lr=0.01, width=0.25)
    model = build_model(settings, seed=0).cuda()
    opt = SGD(model.parameters(), lr=0.01)
    data = _data(1000)
    x, y = data.train_x.cuda(), data.train_y.cuda()
    loss = minibatch_loss(model, x, y, contextlib.nullcontext)
    step = GraphedStep(EagerStep(model, opt, loss), batch_sizes(1000, 64))
    _second_epoch_has_no_host_sync(step, torch.Generator(device="cuda").manual_seed(0))


def _second_epoch_has_no_host_sync(step, generators, n=1000):
    """An epoch of ``step`` (warm-up), then one that fails at any host sync."""
    run_epoch(step, n, 64, generators)
    torch.cuda.set_sync_debug_mode("error")
    try:
        run_epoch(step, n, 64, generators)
    finally:
        torch.cuda.set_sync_debug_mode(0)


def _resume_settings(device, **kw):
    base = dict(
        epochs=4, batch_size=64, lr=0.05, width=0.25, dropout=0.5, device=device, checkpoint_every=2
    )
    return Settings(**{**base, **kw})


def test_checkpoint_moves_between_cuda_and_cpu(tmp_path):
    """A checkpoint written on the GPU resumes on the CPU and the other way round (the crash of
    commit 2234255: the CPU RNG state came back as a CUDA tensor)."""
    data = _data()
    gpu_ckpt, cpu_ckpt = tmp_path / "gpu.pt", tmp_path / "cpu.pt"
    train(data, _resume_settings("cuda", epochs=2), seed=0, checkpoint=gpu_ckpt, progress=False)
    on_cpu, _, info = train(
        data, _resume_settings("cpu"), seed=0, checkpoint=gpu_ckpt, progress=False
    )
    assert info["resumed_from_epoch"] == 2 and info["device"] == "cpu"
    assert [r["epoch"] for r in on_cpu] == [1, 2, 3, 4]
    train(data, _resume_settings("cpu", epochs=2), seed=0, checkpoint=cpu_ckpt, progress=False)
    on_gpu, _, info = train(
        data, _resume_settings("cuda:0"), seed=0, checkpoint=cpu_ckpt, progress=False
    )
    assert info["resumed_from_epoch"] == 2 and info["device"] == "cuda:0"
    assert info["cuda_graphs"] is True


def test_graphed_run_resumes_with_the_same_metrics(tmp_path):
    """Graphs on (the default on CUDA), fp32: stop after 2 epochs, resume to 4 == 4 straight."""
    _fp32_exact()
    data, ckpt = _data(), tmp_path / "c.pt"
    settings = _resume_settings("cuda", precision="fp32")
    full, _, info = train(data, settings, seed=1, progress=False)
    assert info["cuda_graphs"] is True
    train(
        data,
        _resume_settings("cuda", precision="fp32", epochs=2),
        seed=1,
        checkpoint=ckpt,
        progress=False,
    )
    resumed, _, _ = train(data, settings, seed=1, checkpoint=ckpt, progress=False)
    for a, b in zip(full, resumed, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4, (full, resumed)
        assert a["test_acc"] == b["test_acc"]


def test_background_checkpoints_hold_their_epochs_state_on_cuda(tmp_path, monkeypatch):
    """Graphed fp32 training goes on while each checkpoint is written (here slowly, 0.3 s, in the
    background thread): every checkpoint holds CPU tensors with its own epoch's weights and
    momentum, those of a run stopped at that epoch, and the CUDA RNG state."""
    import threading

    from hw5repro.training import checkpoint

    _fp32_exact()
    data, real_save, written = _data(), checkpoint.save_atomic, {}

    def slow_save(obj, path):
        time.sleep(0.3)
        assert threading.current_thread() is not threading.main_thread()
        written[obj["epoch"]] = obj
        real_save(obj, path)

    monkeypatch.setattr(checkpoint, "save_atomic", slow_save)
    settings = _resume_settings("cuda", precision="fp32", epochs=3, checkpoint_every=1)
    _, _, info = train(data, settings, seed=2, checkpoint=tmp_path / "c.pt", progress=False)
    assert info["cuda_graphs"] is True and sorted(written) == [1, 2, 3]
    assert info["checkpoint_write_seconds"] >= 0.9
    monkeypatch.setattr(checkpoint, "save_atomic", real_save)
    for epoch in (1, 2):
        snapshot = written[epoch]
        assert snapshot["rng"]["cuda"].device.type == "cpu"
        _, model, _ = train(data, replace(settings, epochs=epoch), seed=2, progress=False)
        for key, value in model.state_dict().items():
            assert snapshot["model"][key].device.type == "cpu"
            assert torch.allclose(snapshot["model"][key], value.cpu(), rtol=1e-5, atol=1e-6), key


def _group_datas(k=3, n=200):
    datas = [_data(n) for _ in range(k)]
    for i, data in enumerate(datas):  # own labels per run
        data.train_y = torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(i))
    return datas


@pytest.mark.parametrize("conv_bias", ["add", "triton"])
def test_fused_graphed_runs_equal_runs_trained_alone(conv_bias, monkeypatch):
    """Three runs fused in one network, CUDA graphs on, fp32, dropout 0: each run's metrics
    equal the run trained alone on the GPU; with conv_bias triton the grouped convolutions'
    epilogues are the Triton kernels (hw5repro.fused), in the fused step as alone."""
    from hw5repro import train_epilogues
    from hw5repro.training import train_runs

    _fp32_exact()
    shapes = []  # the channels of each ReLU gradient the kernels computed (at graph capture)
    relu_grad = train_epilogues.relu_grad

    def counted(grad, y):
        shapes.append(y.shape[1])
        return relu_grad(grad, y)

    monkeypatch.setattr(train_epilogues, "relu_grad", counted)
    datas = _group_datas()
    settings = _resume_settings("cuda", precision="fp32", dropout=0.0, epochs=3)
    settings = replace(settings, conv_bias=conv_bias, channels_last=True)
    fused, _, info = train_runs(datas, settings, [0, 1, 2], progress=False)
    assert info["cuda_graphs"] is True and info["runs_fused"] == 3
    assert info["conv_bias"] == conv_bias
    # the fused step's kernels took all three runs' channels (a grouped convolution's output
    # that the kernels did not take would have fallen back to PyTorch's passes)
    assert (conv_bias == "triton") == (3 * 24 in shapes), shapes
    for i, data in enumerate(datas):
        alone, _, _ = train(data, settings, i, progress=False)
        for a, b in zip(fused[i], alone, strict=True):
            assert abs(a["train_loss"] - b["train_loss"]) < 1e-4, (i, fused[i], alone)
            assert abs(a["test_acc"] - b["test_acc"]) <= 1 / 256


@pytest.mark.parametrize("conv_bias", ["add", "triton"])
def test_runs_side_by_side_on_streams_equal_runs_trained_alone(conv_bias):
    """group_form: streams, three runs, CUDA graphs on (one graph of three stream branches) and
    off (eager, the branches queued on three streams), fp32, dropout 0: each run's metrics are
    the run's alone on the GPU, with every single-run kernel (the Triton epilogues and the
    first convolution under triton)."""
    from hw5repro.training import train_runs

    _fp32_exact()
    datas = _group_datas()
    settings = _resume_settings("cuda", precision="fp32", dropout=0.0, epochs=3)
    settings = replace(settings, conv_bias=conv_bias, channels_last=True, group_form="streams")
    settings = replace(settings, first_conv=conv_bias if conv_bias == "triton" else "torch")
    for graphs in (True, False):
        side, _, info = train_runs(
            datas, replace(settings, cuda_graphs=graphs), [0, 1, 2], progress=False
        )
        assert info["cuda_graphs"] is graphs and info["group_form"] == "streams"
        assert info["conv_bias"] == conv_bias and info["first_conv"] == settings.first_conv
        for i, data in enumerate(datas):
            alone, _, _ = train(data, settings, i, progress=False)
            for a, b in zip(side[i], alone, strict=True):
                assert abs(a["train_loss"] - b["train_loss"]) < 1e-4, (graphs, i, side[i], alone)
                assert abs(a["test_acc"] - b["test_acc"]) <= 1 / 256


def test_runs_side_by_side_draw_their_own_fresh_dropout_masks_at_every_replay():
    """lr 0 and three runs with the same weights and the same batch: different losses, between
    the runs of one replay and between replays, can only come from their dropout masks, drawn
    on three streams of one graph."""
    from hw5repro.runset import StreamRuns
    from hw5repro.training.steps import batch_sizes

    settings = Settings(epochs=1, batch_size=64, lr=0.0, width=0.25, dropout=0.5)
    settings = replace(settings, group_form="streams")
    runs = StreamRuns(
        [_data(64)] * 3, settings, [0, 0, 0], torch.device("cuda"), torch.channels_last,
        contextlib.nullcontext,
    )  # fmt: skip
    step = GraphedStep(
        EagerStep(runs.model, runs.optimizer, runs.loss(runs.model)),
        batch_sizes(64, 64),
        runs=3,
    )
    idx = torch.arange(64, device="cuda").expand(3, 64).contiguous()
    losses = torch.stack([step(idx).clone() for _ in range(4)]).cpu()
    assert losses.shape == (4, 3) and len(set(losses.flatten().tolist())) == 12, losses


def test_runs_side_by_side_graphed_epoch_has_no_host_sync():
    from hw5repro.runset import StreamRuns

    settings = replace(Settings(epochs=1, batch_size=64, lr=0.01, width=0.25), momentum=0.9)
    runs = StreamRuns(
        _group_datas(n=1000), settings, [0, 1, 2], torch.device("cuda"), torch.channels_last,
        contextlib.nullcontext,
    )  # fmt: skip
    eager = EagerStep(runs.model, runs.optimizer, runs.loss(runs.model))
    step = GraphedStep(eager, batch_sizes(1000, 64), runs=3)
    gens = [torch.Generator(device="cuda").manual_seed(i) for i in range(3)]  # as the tests above
    _second_epoch_has_no_host_sync(step, gens)


def test_runs_side_by_side_resume_exactly_with_dropout(tmp_path):
    """Streams, graphs, fp32, dropout 0.5 (the runs' masks from the shared CUDA stream, which
    the checkpoints restore): 2 epochs, a checkpoint and 2 more == 4 epochs straight."""
    from hw5repro.training import train_runs

    _fp32_exact()
    datas, seeds = _group_datas(), [0, 1, 2]
    settings = replace(_resume_settings("cuda", precision="fp32"), group_form="streams")
    paths = [tmp_path / f"r{i}.pt" for i in range(3)]
    full, _, info = train_runs(datas, settings, seeds, progress=False)
    assert info["cuda_graphs"] is True
    train_runs(datas, replace(settings, epochs=2), seeds, paths, progress=False)
    resumed, _, info = train_runs(datas, settings, seeds, paths, progress=False)
    assert info["resumed_from_epoch"] == 2
    for a, b in zip(full, resumed, strict=True):
        for row_a, row_b in zip(a, b, strict=True):
            assert abs(row_a["train_loss"] - row_b["train_loss"]) < 1e-4, (full, resumed)
            assert row_a["test_acc"] == row_b["test_acc"]


def test_overlapped_evaluation_measures_what_inline_evaluation_measures():
    """eval_overlap: true evaluates each epoch on a second stream while the next
    epoch trains on a high-priority stream, from a copy of the epoch's weights: fp32, dropout 0,
    the same metrics as inline evaluation every epoch (evaluation reading weights that the next
    epoch is updating would drift them)."""
    _fp32_exact()
    data = _data(2000)
    settings = _resume_settings(
        "cuda", precision="fp32", dropout=0.0, epochs=5, eval_batch_size=500
    )
    inline, _, info = train(data, replace(settings, eval_overlap=False), seed=2, progress=False)
    assert info["eval_overlap"] is False
    overlapped, _, info = train(data, replace(settings, eval_overlap=True), seed=2, progress=False)
    assert info["eval_overlap"] is True and info["cuda_graphs"] is True
    assert [r["epoch"] for r in overlapped] == [1, 2, 3, 4, 5]
    for a, b in zip(inline, overlapped, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4, (inline, overlapped)
        assert abs(a["test_loss"] - b["test_loss"]) < 1e-4, (inline, overlapped)
        assert abs(a["train_acc"] - b["train_acc"]) <= 1 / 2000
        assert abs(a["test_acc"] - b["test_acc"]) <= 1 / 256
        assert b["eval_seconds"] > 0 and b["epoch_seconds"] > 0


def _evaluates_like_the_plain_network(other: AlexNet, n: int) -> None:
    """``other``, a variant of the width-1/4 AlexNet given the plain network's weights, computes
    its evaluation logits bit for bit, in fp32 and in bf16 autocast (channels_last)."""
    _fp32_exact()
    torch.manual_seed(0)
    cl = torch.channels_last
    plain = AlexNet(width=0.25).cuda().to(memory_format=cl).eval()
    other = other.cuda().to(memory_format=cl).eval()
    other.load_state_dict(plain.state_dict())
    x = _data(n).train_x.cuda().contiguous(memory_format=cl)
    with torch.inference_mode():
        assert torch.equal(other(x), plain(x))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            assert torch.equal(other(x), plain(x))


@pytest.mark.parametrize("form", ["gemm", "after_pool", "triton"])
def test_other_bias_forms_compute_what_the_broadcast_add_computes(form):
    """conv_bias gemm, after_pool and triton on CUDA (hw5repro.model.add_bias, Features,
    hw5repro.train_epilogues): the same evaluation logits as the broadcast add, bit for bit, in
    bf16 autocast and in fp32 (channels_last); and graphed fp32 training with the same losses and
    accuracies (the bias gradient is the same sum in another order)."""
    _evaluates_like_the_plain_network(AlexNet(width=0.25, conv_bias=form), n=512)
    settings = _resume_settings("cuda", precision="fp32", dropout=0.0, epochs=3)
    added, _, _ = train(_data(), settings, seed=3, progress=False)
    changed, _, info = train(_data(), replace(settings, conv_bias=form), seed=3, progress=False)
    assert info["conv_bias"] == form and info["cuda_graphs"] is True
    for a, b in zip(added, changed, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4, (added, changed)
        assert abs(a["test_acc"] - b["test_acc"]) <= 1 / 256


def test_triton_evaluation_epilogues_compute_what_pytorchs_passes_compute():
    """training.triton_eval (hw5repro.eval_kernels) on CUDA: the same evaluation logits as
    PyTorch's passes, bit for bit, in bf16 autocast and in fp32 (channels_last, a batch with
    partial blocks); and a graphed bf16 training run with it evaluates what one without measures
    (two trainings: within what cuDNN's choice of algorithms moves)."""
    fused = AlexNet(width=0.25)
    fused.features.fused_eval_epilogues = True
    _evaluates_like_the_plain_network(fused, n=500)
    settings = _resume_settings("cuda", precision="bf16", dropout=0.0, epochs=3)
    torch_eval, _, _ = train(_data(), settings, seed=3, progress=False)
    triton_eval, _, info = train(
        _data(), replace(settings, triton_eval=True), seed=3, progress=False
    )
    assert info["triton_eval"] is True
    for a, b in zip(torch_eval, triton_eval, strict=True):  # two trainings: cuDNN may choose
        assert abs(a["test_loss"] - b["test_loss"]) < 1e-3, (torch_eval, triton_eval)
        assert abs(a["train_acc"] - b["train_acc"]) <= 2 / 512
        assert abs(a["test_acc"] - b["test_acc"]) <= 2 / 256


def test_first_convolution_in_triton_computes_the_convolution():
    """training.first_conv: triton (hw5repro.first_conv) on CUDA: the forward is the taps
    summed in order, bit for bit in bf16 (where every product is exact, so FMAs change nothing);
    the gradients are cuDNN's within rounding, the same on every call; and graphed training
    (fp32 with the same losses, bf16 within what cuDNN's choice of algorithms moves) learns what
    it learns with cuDNN's convolution."""
    from hw5repro.first_conv import FirstConv2d, conv_backward, conv_forward, taps_in_order

    _fp32_exact()
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28, device="cuda").contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(96, 1, 4, 4, device="cuda") * 0.3, torch.randn(96, device="cuda")
    bf16 = [t.to(torch.bfloat16) for t in (x, w, b)]
    assert torch.equal(conv_forward(*bf16), taps_in_order(*bf16))
    torch.testing.assert_close(conv_forward(x, w, b), torch.nn.functional.conv2d(x, w, b))
    grad = torch.randn(64, 96, 25, 25, device="cuda")
    gw, gb = conv_backward(x, grad, (4, 4), 96)
    w_, b_ = w.clone().requires_grad_(), b.clone().requires_grad_()
    torch.nn.functional.conv2d(x, w_, b_).backward(grad)
    torch.testing.assert_close(gw, w_.grad, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(gb, b_.grad, rtol=1e-4, atol=1e-3)
    again = conv_backward(x, grad, (4, 4), 96)
    assert torch.equal(again[0], gw) and torch.equal(again[1], gb)
    assert isinstance(AlexNet(first_conv="triton").features[0], FirstConv2d)
    for precision, loss_tol, miss in (("fp32", 1e-4, 1), ("bf16", 2e-2, 8)):
        settings = _resume_settings("cuda", precision=precision, dropout=0.0, epochs=3)
        cudnn, _, _ = train(_data(), settings, seed=3, progress=False)
        ours, _, info = train(
            _data(), replace(settings, first_conv="triton"), seed=3, progress=False
        )
        assert info["first_conv"] == "triton" and info["cuda_graphs"] is True
        for a, b in zip(cudnn, ours, strict=True):
            assert abs(a["train_loss"] - b["train_loss"]) < loss_tol, (precision, cudnn, ours)
            assert abs(a["test_acc"] - b["test_acc"]) <= miss / 256, (precision, cudnn, ours)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_training_epilogues_are_pytorchs_cuda_passes(dtype):
    """hw5repro.train_epilogues against PyTorch's CUDA kernels, bit for bit: relu(max_pool(out) +
    b) and the max's place in each window (ties in bf16: the first largest), the ReLU's gradient
    and the max-pool's input gradient (fp32 sums in the windows' order, rounded once); the bias
    gradient within rounding. Then relu(out + b) and its gradients the same way."""
    from hw5repro import train_epilogues

    _fp32_exact()
    torch.manual_seed(0)
    cl = torch.channels_last
    out = (torch.randn(64, 96, 23, 23, device="cuda") * 3).to(dtype).contiguous(memory_format=cl)
    bias = torch.randn(96, device="cuda")
    grad = torch.randn(64, 96, 11, 11, device="cuda").to(dtype)
    mine = out.detach().clone().requires_grad_()
    theirs = out.detach().clone().requires_grad_()
    b1, b2 = bias.clone().requires_grad_(), bias.clone().requires_grad_()
    y = train_epilogues.pool_bias_relu(mine, b1)
    ref = torch.relu(torch.nn.functional.max_pool2d(theirs, 3, 2) + b2.to(dtype).view(1, -1, 1, 1))
    assert torch.equal(y, ref)
    y.backward(grad)
    ref.backward(grad)
    assert torch.equal(mine.grad, theirs.grad)
    torch.testing.assert_close(b1.grad, b2.grad, rtol=1e-2, atol=1e-2 * b2.grad.abs().max().item())
    mine.grad = theirs.grad = b1.grad = b2.grad = None
    grad = torch.randn(64, 96, 23, 23, device="cuda").to(dtype)
    y = train_epilogues.bias_relu(mine, b1)
    ref = torch.relu(theirs + b2.to(dtype).view(1, -1, 1, 1))
    assert torch.equal(y, ref)
    y.backward(grad)
    ref.backward(grad)
    assert torch.equal(mine.grad, theirs.grad)
    torch.testing.assert_close(b1.grad, b2.grad, rtol=1e-2, atol=1e-2 * b2.grad.abs().max().item())


def test_the_workflows_config_trains_with_the_triton_kernels():
    """config/config.yaml's conv_bias and first_conv (auto) on CUDA with Triton are the Triton
    kernels (hw5repro.device.resolve_triton_settings), in a graphed bf16 run."""
    from pathlib import Path

    import yaml

    config = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
    settings = Settings.from_config(config)
    assert (settings.conv_bias, settings.first_conv) == ("auto", "auto")
    metrics, _, info = train(
        _data(),
        replace(settings, epochs=3, width=0.25, eval_batch_size=256),
        seed=3,
        progress=False,
    )
    assert (info["conv_bias"], info["first_conv"], info["cuda_graphs"]) == (
        "triton",
        "triton",
        True,
    )
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert all(0 < m["train_loss"] < 2.5 and 0 <= m["test_acc"] <= 1 for m in metrics), metrics


@pytest.mark.parametrize("group_form", [None, "streams", "fused"])
def test_deterministic_reruns_reproduce_every_metric_bit_for_bit(group_form):
    """training.deterministic: true with config/config.yaml's settings otherwise (bf16, CUDA
    graphs, the Triton kernels, dropout 0.5): a second run of the same run, or of the same group
    of three in either form, gives every metric and weight bit for bit (no cuDNN autotuning, no
    atomic sums; hw5repro.device.select_algorithms), and no operation lacks a deterministic
    algorithm."""
    from pathlib import Path

    import pandas as pd
    import yaml

    from hw5repro.training import train_runs

    config = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
    settings = replace(
        Settings.from_config(config), epochs=3, width=0.25, eval_batch_size=256, deterministic=True
    )
    datas, seeds = ([_data()], [5]) if group_form is None else (_group_datas(), [5, 6, 7])
    settings = replace(settings, group_form=group_form or "fused")
    try:
        first, second = (train_runs(datas, settings, seeds, progress=False) for _ in range(2))
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    assert first[2]["deterministic"] is True and first[2]["cuda_graphs"] is True
    assert first[2]["runs_fused"] == len(datas)
    timing = ["epoch_seconds", "eval_seconds"]
    for run_a, run_b in zip(first[0], second[0], strict=True):  # (equals: NaN where NaN)
        a, b = (pd.DataFrame(rows).drop(columns=timing) for rows in (run_a, run_b))
        assert len(a) == 3 and a.equals(b), (a, b)
    for model_a, model_b in zip(first[1], second[1], strict=True):
        for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
            assert torch.equal(a, b)
