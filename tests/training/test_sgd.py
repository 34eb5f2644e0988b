"""The training runs' SGD is torch.optim.SGD's, bit for bit, without importing torch._dynamo."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from helpers import REPO
from hw5repro.training.model import AlexNet
from hw5repro.training.sgd import SGD

#: (momentum, weight decay): the paper's plain SGD and the laptop preset's heavy ball with decay
SETTINGS = [(0.0, 0.0), (0.9, 5e-4)]


def _steps(model, optimizer, steps=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.rand(16, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (16,), generator=g)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


def _pair(momentum, weight_decay, foreach):
    torch.manual_seed(0)
    ours = AlexNet(width=0.125, dropout=0.0)
    theirs = copy.deepcopy(ours)
    kw = dict(lr=0.05, momentum=momentum, weight_decay=weight_decay, foreach=foreach)
    return ours, SGD(ours.parameters(), **kw), theirs, torch.optim.SGD(theirs.parameters(), **kw)


def _assert_same(ours, opt, theirs, torch_opt):
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b), name
    mine, reference = opt.state_dict(), torch_opt.state_dict()
    assert mine["param_groups"] == reference["param_groups"]
    assert mine["state"].keys() == reference["state"].keys()
    for i, entry in reference["state"].items():
        assert entry.keys() == mine["state"][i].keys()
        for key, value in entry.items():
            assert torch.equal(mine["state"][i][key], value), (i, key)


# foreach None: the CPU's single-tensor update; True: the foreach kernels that CUDA defaults to
@pytest.mark.parametrize("foreach", [None, True])
@pytest.mark.parametrize("momentum,weight_decay", SETTINGS)
def test_sgd_computes_torch_optim_sgd_bit_for_bit(momentum, weight_decay, foreach):
    ours, opt, theirs, torch_opt = _pair(momentum, weight_decay, foreach)
    _steps(ours, opt)
    _steps(theirs, torch_opt)
    _assert_same(ours, opt, theirs, torch_opt)
    moved = [p for p in ours.parameters() if p.grad is not None]
    assert moved and all(p.grad is not None for p in theirs.parameters())
    assert len(opt.state) == (len(moved) if momentum else 0)  # buffers only with momentum


@pytest.mark.parametrize("momentum,weight_decay", SETTINGS)
def test_state_dicts_load_both_ways_and_go_on_identically(momentum, weight_decay):
    """A checkpoint of torch.optim.SGD (every checkpoint before this optimiser) resumes in
    ours, and ours in torch's, with the same next steps."""
    ours, opt, theirs, torch_opt = _pair(momentum, weight_decay, None)
    _steps(ours, opt, seed=1)
    _steps(theirs, torch_opt, seed=1)
    # cross over: each optimiser continues from the other's saved state
    fresh_ours = SGD(ours.parameters(), lr=0.05, momentum=momentum, weight_decay=weight_decay)
    fresh_ours.load_state_dict(copy.deepcopy(torch_opt.state_dict()))
    fresh_theirs = torch.optim.SGD(
        theirs.parameters(), lr=0.05, momentum=momentum, weight_decay=weight_decay
    )
    fresh_theirs.load_state_dict(copy.deepcopy(opt.state_dict()))
    _steps(ours, fresh_ours, seed=2)
    _steps(theirs, fresh_theirs, seed=2)
    _assert_same(ours, fresh_ours, theirs, fresh_theirs)


def test_loaded_buffers_take_their_parameters_dtype_and_device():
    """Checkpoints hold CPU tensors (map_location="cpu"); a buffer follows its parameter, as
    torch.optim.SGD.load_state_dict does (here: float32 saved, float64 parameters)."""
    model = AlexNet(width=0.125, dropout=0.0)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    _steps(model, opt, steps=1)
    saved = opt.state_dict()
    wide = AlexNet(width=0.125, dropout=0.0).double()
    loaded = SGD(wide.parameters(), lr=0.05, momentum=0.9)
    loaded.load_state_dict(saved)
    for p in wide.parameters():
        buffer = loaded.state[p]["momentum_buffer"]
        assert buffer.dtype == torch.float64 and buffer.device == p.device
    with pytest.raises(ValueError, match="optimiser state of 2 parameters, this network has"):
        loaded.load_state_dict({"state": {}, "param_groups": [{"params": [0, 1]}]})


def test_zero_grad_only_sets_gradients_to_none_and_bad_settings_are_named():
    model = AlexNet(width=0.125, dropout=0.0)
    opt = SGD(model.parameters(), lr=0.05)
    _steps(model, opt, steps=1)
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="only sets gradients to None"):
        opt.zero_grad(set_to_none=False)
    with pytest.raises(ValueError, match="lr=-0.1"):
        SGD(model.parameters(), lr=-0.1)


def test_a_training_run_does_not_import_the_compiler():
    """What the optimiser is for: torch.optim's first use imports torch._dynamo (about 2 s of
    every training job's start on a 2-core CPU). A whole run, with checkpoints, must not."""
    script = textwrap.dedent(
        """
        import sys, tempfile, torch
        sys.path.insert(0, "tests")
        from helpers import small_settings, toy_data
        from hw5repro.training.loop import train
        with tempfile.TemporaryDirectory() as tmp:
            train(toy_data(n=64), small_settings(epochs=2, momentum=0.9), seed=0,
                  checkpoint=f"{tmp}/checkpoint.pt", progress=False)
        print(sorted(m for m in sys.modules if m.startswith("torch._dynamo")))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
