"""The seed's modified AlexNet for 28x28 MNIST, with an optional width multiplier."""

from __future__ import annotations

import torch
from torch import nn

from .first_conv import FIRST_CONV, FirstConv2d

#: How a convolution's bias is added (``training.conv_bias``).
CONV_BIAS = ("add", "gemm", "after_pool", "triton")


def add_bias(out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``out + bias`` per channel, for a channels_last ``out`` as a rank-one matrix product:
    ``addmm(out2d, ones, bias)``, with out2d the (N*H*W, C) view of its memory.

    After a cuDNN convolution PyTorch adds the bias in a broadcast elementwise kernel (and gets
    its gradient from a reduction kernel), both far below the GPU's memory bandwidth. The
    product computes the same values: with one term of 1 x bias, each sum is out + bias rounded
    once to the output dtype, as the elementwise add rounds it. Its backward gives ``out`` the
    gradient unchanged and the bias ``ones^T @ grad2d`` (the same sum, another order). Where the
    product would not be the same sum (``out`` not channels_last; float32 matrix products in
    TF32) it falls back to the broadcast add."""
    channels = out.shape[1]
    row = bias.view(1, channels)
    tf32 = out.dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32
    if out.dim() != 4 or tf32 or not out.is_contiguous(memory_format=torch.channels_last):
        return out + row.to(out.dtype).view(1, channels, 1, 1)
    n, _, h, w = out.shape
    flat = out.permute(0, 2, 3, 1).reshape(n * h * w, channels)  # a view
    summed = torch.addmm(flat, flat.new_ones(n * h * w, 1), row.to(out.dtype))
    return summed.view(n, h, w, channels).permute(0, 3, 1, 2)


class GemmBiasConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose bias is added by :func:`add_bias` on CUDA (``conv_bias: gemm``). On the
    CPU oneDNN adds the bias inside its convolution, so there it is ``nn.Conv2d`` unchanged. The
    parameters and state dict keys are those of ``nn.Conv2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_cuda:
            return super().forward(x)
        return add_bias(self._conv_forward(x, self.weight, None), self.bias)


class Features(nn.Sequential):
    """The convolution stack: ``nn.Sequential`` (the same state dict keys), except that with
    ``bias_after_pool`` (``conv_bias: after_pool``) on CUDA a convolution followed by a max-pool
    adds its bias after the pool (:func:`add_bias`), on a fourth of the elements: PyTorch adds
    the bias after cuDNN's convolution in a pass of its own, and rounding is monotone, so
    ``max(round(x + b)) == round(max(x) + b)`` exactly. The pool's gradient goes to the same
    element of its window unless adding the bias rounded two values to a tie (then to the first
    of the tie, as with the bias before); the bias gradient is summed over the pooled gradient. On
    the CPU (oneDNN adds the bias inside its convolution) it is ``nn.Sequential`` unchanged.

    With ``fused_eval_epilogues`` (``training.triton_eval``; set on the evaluation's networks) a
    forward pass without autograd on CUDA runs each convolution's bias, ReLU and max-pool as one
    Triton kernel (:mod:`hw5repro.eval_kernels`; the same values). With ``triton_epilogues``
    (``conv_bias: triton``) every forward pass on CUDA does, and with autograd their backward
    passes too (:mod:`hw5repro.train_epilogues`; the values of ``after_pool``)."""

    fused_eval_epilogues = False

    def __init__(
        self, *layers: nn.Module, bias_after_pool: bool = False, triton_epilogues: bool = False
    ):
        super().__init__(*layers)
        self.bias_after_pool = bias_after_pool
        self.triton_epilogues = triton_epilogues

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.fused_eval_epilogues and not torch.is_grad_enabled()
        if fused or self.triton_epilogues:
            from .eval_kernels import forward_fused_epilogues, kernels_run_on

            if kernels_run_on(x):
                return forward_fused_epilogues(self, x)
        if self.bias_after_pool and x.is_cuda:
            return forward_bias_after_pool(self, x)
        return super().forward(x)


def forward_bias_after_pool(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``layers(x)`` with each convolution that a max-pool follows adding its bias after the pool
    (:class:`Features`; a function of its own so that the CPU tests run it)."""
    bias = None
    for i, layer in enumerate(layers):
        pooled_next = i + 1 < len(layers) and isinstance(layers[i + 1], nn.MaxPool2d)
        if isinstance(layer, nn.Conv2d) and pooled_next:
            x, bias = layer._conv_forward(x, layer.weight, None), layer.bias
        else:
            x = layer(x)
            if bias is not None:  # ``layer`` is the pool
                x, bias = add_bias(x, bias), None
    return x


def conv_bias_used(model: nn.Module, device: torch.device) -> str:
    """How ``model``'s convolutions add their bias on ``device``: ``triton`` where its
    :class:`Features` runs the Triton epilogues (CUDA; Triton's interpreter); ``gemm`` where they
    are :class:`GemmBiasConv2d` on CUDA, ``after_pool`` where in addition its :class:`Features`
    adds the biases of pooled convolutions after the pool, else ``add`` (the CPU; a fused
    network's grouped convolutions without the Triton epilogues)."""
    from .eval_kernels import kernels_run_on

    features = next((m for m in model.modules() if isinstance(m, Features)), None)
    if features is not None and features.triton_epilogues and kernels_run_on(device):
        return "triton"
    if device.type != "cuda" or not any(isinstance(m, GemmBiasConv2d) for m in model.modules()):
        return "add"
    return "after_pool" if features is not None and features.bias_after_pool else "gemm"


class AlexNet(nn.Module):
    """Six conv layers, two 3x3/2 max-pools, dropout and two linear layers.

    At ``width=1`` this is exactly the seed's network (8,925,738 parameters, the same state dict
    keys). Where the seed pools after a ReLU, the ReLU comes after the pool: max and ReLU commute
    exactly (forward and backward; tests/test_model.py), and the ReLU then passes over a fourth
    of the activations. ``width`` scales every
    channel and hidden-unit count for fast CPU runs; ``init="kaiming"`` replaces PyTorch's default
    initialisation by He's. ``conv_bias="gemm"`` adds the convolutions' biases as a matrix
    product on CUDA (:func:`add_bias`; the same values, another order of the bias gradient's sum);
    ``"after_pool"`` in addition adds the biases of the two pooled convolutions after their pools
    (:class:`Features`; the same values); ``"triton"`` runs every convolution's bias, ReLU and
    max-pool as Triton kernels on CUDA, forward and backward (:mod:`hw5repro.train_epilogues`;
    the values of ``after_pool``, the bias gradient summed in another order).
    ``first_conv="triton"`` runs the first convolution
    (one input channel) as Triton kernels on CUDA (:mod:`hw5repro.first_conv`).
    """

    def __init__(
        self,
        num_classes: int = 10,
        width: float = 1.0,
        dropout: float = 0.5,
        init: str = "default",
        conv_bias: str = "add",
        first_conv: str = "torch",
    ):
        super().__init__()
        if conv_bias not in CONV_BIAS:
            raise ValueError(f"unknown conv_bias {conv_bias!r}; expected one of {CONV_BIAS}")
        if first_conv not in FIRST_CONV:
            raise ValueError(f"unknown first_conv {first_conv!r}; expected one of {FIRST_CONV}")
        Conv2d = GemmBiasConv2d if conv_bias in ("gemm", "after_pool") else nn.Conv2d
        FirstConv = FirstConv2d if first_conv == "triton" else Conv2d

        def w(channels: int) -> int:
            return max(1, round(channels * width))

        c1, c2, c3, c4, hidden = w(96), w(256), w(384), w(256), w(800)
        self.features = Features(
            FirstConv(1, c1, kernel_size=4),  # 28 -> 25
            nn.ReLU(inplace=True),
            Conv2d(c1, c1, kernel_size=3),  # 25 -> 23
            nn.ReLU(inplace=True),
            Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 23 -> 11
            nn.ReLU(inplace=True),
            Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            Conv2d(c3, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            Conv2d(c3, c4, kernel_size=3, padding=1),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 11 -> 5
            nn.ReLU(inplace=True),
            bias_after_pool=conv_bias == "after_pool",
            triton_epilogues=conv_bias == "triton",
        )
        self.classifier = nn.Sequential(
            nn.Flatten(1),
            nn.Dropout(dropout),
            nn.Linear(c4 * 5 * 5, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        if init == "kaiming":
            self._kaiming_init()
        elif init != "default":
            raise ValueError(f"unknown init {init!r}; expected 'default' or 'kaiming'")

    def _kaiming_init(self) -> None:
        """He-normal weights and zero biases. PyTorch's default (uniform, variance 1/(3 fan_in))
        shrinks the signal about sixfold in variance per ReLU layer, which leaves this deep net on a
        long loss plateau at chance; He initialisation keeps the variance and starts learning at
        once (used by the CPU presets; the paper-scale run keeps the seed's default)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x):
        return self.classifier(self.features(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
