"""Settings of one run (hw5repro.training.settings): every auto resolved once, from the schema's
defaults, into a frozen object."""

import dataclasses
from importlib import metadata

import pytest
import torch

from helpers import settings_config, small_settings
from hw5repro.pipeline.config import defaults, load_schema
from hw5repro.training import device
from hw5repro.training.device import DeviceError, resolve_device
from hw5repro.training.settings import Settings, resolve_precision


def test_the_schemas_defaults_resolve_on_the_cpu():
    settings = Settings.from_config(defaults(load_schema()))
    expected_device = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert settings.device in {expected_device, "cuda"}
    if settings.device == "cpu":
        assert (settings.precision, settings.cuda_graphs, settings.conv_epilogue) == (
            "fp32",
            False,
            "torch",
        )
    assert settings.channels_last is True  # auto: channels_last everywhere
    assert (settings.epochs, settings.batch_size, settings.lr) == (150, 64, 0.1)
    assert (settings.width, settings.dropout, settings.init) == (1.0, 0.5, "default")


def test_settings_are_frozen_and_split_into_model_and_result_settings():
    settings = small_settings(epochs=3, momentum=0.9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.epochs = 4
    assert settings.model() == {
        "width": 0.125,
        "dropout": 0.5,
        "init": "default",
        "conv_epilogue": "torch",
    }
    results = settings.results()
    assert results["epochs"] == 3 and results["momentum"] == 0.9
    assert "checkpoint_every" not in results and "eval_batch_size" not in results
    assert list(results) == sorted(results)
    assert dataclasses.replace(settings, lr=0.2).results()["lr"] == 0.2


def test_numbers_given_as_text_become_numbers():
    settings = Settings.from_config(settings_config(lr="0.2", epochs="3", width="0.25"))
    assert (settings.lr, settings.epochs, settings.width) == (0.2, 3, 0.25)


def test_cuda_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
        return
    with pytest.raises(DeviceError, match="training.device is 'cuda' but no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="training.device is 'cuda:1' but no CUDA device"):
        small_settings(device="cuda:1")
    assert resolve_device("auto").type == "cpu"
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    # triton on the CPU: PyTorch's passes compute the same; the setting stays as chosen
    assert small_settings(conv_epilogue="triton").conv_epilogue == "triton"


def test_software_names_triton_under_either_distribution_name(monkeypatch):
    """On CUDA the run records Triton's version, also where it is installed as pytorch-triton
    (PyTorch's nightly builds); on the CPU no CUDA, cuDNN or Triton version."""
    installed = {"pytorch-triton": "3.6.0+git1234"}

    def version(name):
        if name not in installed:
            raise metadata.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91002)
    assert device.software(torch.device("cuda"))["triton"] == "3.6.0+git1234"
    assert device.software(torch.device("cuda"))["cudnn"] == 91002
    installed = {"triton": "3.5.0"}
    assert device.software(torch.device("cuda"))["triton"] == "3.5.0"
    installed = {}
    assert device.software(torch.device("cuda"))["triton"] is None
    cpu = device.software(torch.device("cpu"))
    assert cpu == {"torch": torch.__version__, "cuda": None, "cudnn": None, "triton": None}
