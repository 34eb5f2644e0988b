"""The runs one training process trains at once, behind one interface.

:class:`SingleRun` is one run on a plain :class:`~hw5repro.model.AlexNet`. K runs
(``train_runs`` with K datasets) are :class:`FusedRuns`, one
:class:`~hw5repro.fused.FusedAlexNet` (``training.group_form: fused``), or :class:`StreamRuns`,
K plain networks side by side, each run's step on a CUDA stream of its own (``group_form:
streams``; :mod:`hw5repro.side_by_side`). All three give the training loop the same things: the
network and its SGD optimiser, the loss of a minibatch (for the step), the runs' batch-order
generators, what evaluating them needs (a plain evaluation network per run, each run's weights
and data: :mod:`hw5repro.evaluation`), and each run's own state in the format of a single run's
checkpoint, so that a run resumes in a group or alone alike.

Each run keeps what it has when trained alone: initial weights from its own seed stream, its own
labels or corrupted inputs, its own permutation of the data every epoch and its own batch.
"""

from __future__ import annotations

import copy

import torch

from .device import resolve_triton_eval
from .experiment import stream_seed
from .fused import FusedAlexNet, fused_minibatch_loss
from .model import AlexNet
from .sgd import SGD
from .side_by_side import SideBySideAlexNets, side_by_side_loss
from .steps import minibatch_loss


def model_settings(settings) -> dict:
    """What builds (and rebuilds) the network: ``AlexNet(**model_settings(settings))``."""
    return {
        "width": settings.width,
        "dropout": settings.dropout,
        "init": settings.init,
        "conv_bias": settings.conv_bias,
        "first_conv": settings.first_conv,
    }


def build_model(settings, seed: int) -> AlexNet:
    torch.manual_seed(stream_seed(seed, "init"))
    return AlexNet(**model_settings(settings))


def make_optimizer(settings, model) -> SGD:
    return SGD(
        model.parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
    )


def batch_generator(seed: int) -> torch.Generator:
    """A run's batch order comes from a CPU generator on every device (see steps.permutation)."""
    return torch.Generator().manual_seed(stream_seed(seed, "batches"))


def run_optimizer_state(optimizer: SGD, buffers: list) -> dict:
    """A single run's optimiser state dict (``torch.optim.SGD``'s layout) from its momentum
    buffers in the order of its parameters (None where a parameter has none yet)."""
    group = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
    return {
        "state": {i: {"momentum_buffer": b} for i, b in enumerate(buffers) if b is not None},
        "param_groups": [{**group, "params": list(range(len(buffers)))}],
    }


class SingleRun:
    """One run on a plain AlexNet (one job per run, the cluster's layout)."""

    runs = 1
    index_runs = None  # a minibatch index is (B,)

    def __init__(self, datas, settings, seeds, device, memory_format, autocast):
        (data,), (seed,) = datas, seeds
        self.settings, self.autocast = settings, autocast
        self.model = build_model(settings, seed).to(device, memory_format=memory_format)
        self.optimizer = make_optimizer(settings, self.model)
        self.eval_nets = [copy.deepcopy(self.model)]  # the evaluation's copy of the weights
        self.generators = batch_generator(seed)
        self.train_x = data.train_x.to(device, memory_format=memory_format)
        self.test_x = data.test_x.to(device, memory_format=memory_format)
        self.train_y, self.test_y = data.train_y.to(device), data.test_y.to(device)
        self.mislabelled = data.mislabelled.to(device).unsqueeze(0)
        self.n = self.train_x.shape[0]

    def loss(self, model):
        return minibatch_loss(model, self.train_x, self.train_y, self.autocast)

    def weights(self, run: int) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def eval_data(self, run: int):
        return self.train_x, self.train_y, self.test_x, self.test_y

    def run_state(self, run: int) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "perm": self.generators.get_state(),
        }

    def load_run_states(self, states: list[dict]) -> None:
        (state,) = states
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generators.set_state(state["perm"])

    def run_model(self, run: int) -> AlexNet:
        return self.model


class FusedRuns:
    """K runs in one FusedAlexNet and one SGD optimiser (exactly K independent SGDs: every update
    is elementwise); a minibatch index is (K, B), one batch per run."""

    def __init__(self, datas, settings, seeds, device, memory_format, autocast):
        self.settings, self.autocast, self.memory_format = settings, autocast, memory_format
        self.runs = self.index_runs = len(datas)
        self.nets = [build_model(settings, seed) for seed in seeds]
        self.model = FusedAlexNet(self.nets).to(device, memory_format=memory_format)
        # Evaluation runs each run's weights in a plain network at the evaluation batch size: a
        # big batch is bound by FLOPs, where plain convolutions beat grouped ones, and a fused
        # batch (eval_batch_size / K images per run, odd sizes) costs cuDNN a long autotuning.
        self.eval_nets = [
            copy.deepcopy(self.nets[0]).to(device, memory_format=memory_format)
            for _ in range(self.runs)
        ]
        self.optimizer = make_optimizer(settings, self.model)
        self.generators = [batch_generator(seed) for seed in seeds]

        def stack(name):
            return torch.stack([getattr(d, name) for d in datas]).to(device)

        self.train_x, self.test_x = stack("train_x").squeeze(2), stack("test_x").squeeze(2)
        self.train_y, self.test_y, self.mislabelled = (
            stack("train_y"),
            stack("test_y"),
            stack("mislabelled"),
        )
        self.n = self.train_x.shape[1]

    def loss(self, model):
        return fused_minibatch_loss(
            model, self.train_x, self.train_y, self.autocast, self.memory_format
        )

    def weights(self, run: int) -> dict[str, torch.Tensor]:
        return self.model.unfused(run)

    def eval_data(self, run: int):
        return (
            self.train_x[run].unsqueeze(1),
            self.train_y[run],
            self.test_x[run].unsqueeze(1),
            self.test_y[run],
        )

    def _momentum(self) -> dict[str, torch.Tensor]:
        return {
            name: self.optimizer.state[p]["momentum_buffer"]
            for name, p in self.model.named_parameters()
            if self.optimizer.state.get(p, {}).get("momentum_buffer") is not None
        }

    def run_state(self, run: int) -> dict:
        """Run ``run``'s state exactly as a single run's checkpoint holds it."""
        names = [name for name, _ in self.nets[0].named_parameters()]
        buffers = self.model.unfuse(self._momentum(), run)
        return {
            "model": self.model.unfused(run),
            "optimizer": run_optimizer_state(self.optimizer, [buffers.get(n) for n in names]),
            "perm": self.generators[run].get_state(),
        }

    def load_run_states(self, states: list[dict]) -> None:
        names = [name for name, _ in self.nets[0].named_parameters()]
        self.model.load_state_dict(self.model.fuse([s["model"] for s in states]))
        buffers = [
            {names[i]: entry["momentum_buffer"] for i, entry in s["optimizer"]["state"].items()}
            for s in states
        ]
        fused = self.model.fuse(buffers)
        for name, p in self.model.named_parameters():
            if name in fused:
                self.optimizer.state[p]["momentum_buffer"] = fused[name].to(p.device)
        for generator, state in zip(self.generators, states, strict=True):
            generator.set_state(state["perm"])

    def run_model(self, run: int) -> AlexNet:
        net = self.nets[run]
        net.load_state_dict(self.model.unfused(run))
        return net


class StreamRuns:
    """K runs side by side: each its plain AlexNet, one SGD optimiser over all of them (exactly
    K independent SGDs), each run's step on its own CUDA stream (:mod:`hw5repro.side_by_side`); a
    minibatch index is (K, B), one batch per run."""

    def __init__(self, datas, settings, seeds, device, memory_format, autocast):
        self.settings, self.autocast = settings, autocast
        self.runs = self.index_runs = len(datas)
        self.nets = [
            build_model(settings, seed).to(device, memory_format=memory_format) for seed in seeds
        ]
        self.model = SideBySideAlexNets(self.nets)
        self.optimizer = make_optimizer(settings, self.model)
        self.eval_nets = [copy.deepcopy(net) for net in self.nets]
        self.generators = [batch_generator(seed) for seed in seeds]
        self.train_x = [d.train_x.to(device, memory_format=memory_format) for d in datas]
        self.test_x = [d.test_x.to(device, memory_format=memory_format) for d in datas]
        self.train_y = [d.train_y.to(device) for d in datas]
        self.test_y = [d.test_y.to(device) for d in datas]
        self.mislabelled = torch.stack([d.mislabelled for d in datas]).to(device)
        self.n = self.train_x[0].shape[0]

    def loss(self, model):
        return side_by_side_loss(model, self.train_x, self.train_y, self.autocast)

    def weights(self, run: int) -> dict[str, torch.Tensor]:
        return self.nets[run].state_dict()

    def eval_data(self, run: int):
        return self.train_x[run], self.train_y[run], self.test_x[run], self.test_y[run]

    def run_state(self, run: int) -> dict:
        """Run ``run``'s state exactly as a single run's checkpoint holds it."""
        state = self.optimizer.state  # (a defaultdict: .get adds no entries)
        buffers = [state.get(p, {}).get("momentum_buffer") for p in self.nets[run].parameters()]
        return {
            "model": self.nets[run].state_dict(),
            "optimizer": run_optimizer_state(self.optimizer, buffers),
            "perm": self.generators[run].get_state(),
        }

    def load_run_states(self, states: list[dict]) -> None:
        for net, generator, state in zip(self.nets, self.generators, states, strict=True):
            net.load_state_dict(state["model"])
            params = list(net.parameters())
            for i, entry in state["optimizer"]["state"].items():
                buffer = entry["momentum_buffer"].to(params[i].device, params[i].dtype)
                self.optimizer.state[params[i]]["momentum_buffer"] = buffer
            generator.set_state(state["perm"])

    def run_model(self, run: int) -> AlexNet:
        return self.nets[run]


#: ``training.group_form``: how the runs of a job with more than one train together.
GROUP_FORMS = {"fused": FusedRuns, "streams": StreamRuns}


def make_runs(datas, settings, seeds, device, memory_format, autocast):
    cls = SingleRun if len(datas) == 1 else GROUP_FORMS[settings.group_form]
    runs = cls(datas, settings, seeds, device, memory_format, autocast)
    fused_epilogues = resolve_triton_eval(settings.triton_eval, device)
    for net in runs.eval_nets:
        net.features.fused_eval_epilogues = fused_epilogues
    return runs
