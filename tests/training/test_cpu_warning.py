"""The warning a long training job gives when it lands on a CPU (issue 11, item 6)."""

import json
import logging

import pytest
import torch
import yaml

from helpers import REPO
from hw5repro.training.cpu_warning import (
    LAPTOP_PRESET,
    SLOW_SECONDS,
    cpu_images_per_second,
    estimate_cpu_seconds,
    warn_if_slow_on_cpu,
)
from hw5repro.training.settings import Settings

LOG = logging.getLogger("hw5repro.training")


def preset(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())


def test_rates_are_the_measured_ones_at_the_measured_widths():
    """The estimate's rates are the committed CPU throughput records' (benchmarks/results)."""
    for width in (1, 0.125):
        record = REPO / "benchmarks" / "results" / f"train_throughput_cpu_w{width}.json"
        measured = json.loads(record.read_text())["fast_images_per_s"]
        assert cpu_images_per_second(width) == pytest.approx(measured, rel=2e-3), width
    assert cpu_images_per_second(1.0) < cpu_images_per_second(0.25) < cpu_images_per_second(0.125)


def test_paper_scale_on_cpu_warns_with_estimate_and_laptop_preset(caplog):
    config = preset("config")  # paper scale, training.device: auto
    assert config["training"]["device"] == "auto"
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        seconds = warn_if_slow_on_cpu(config, torch.device("cpu"), 6000, LOG, n_test=10000)
    # 6,000 x 150 / 49.3 = 18,256 s training + 150 x 10,000 / (3 x 49.3) = 10,142 s evaluation.
    assert seconds == pytest.approx(6000 * 150 / 49.3 + 150 * 10000 / (3 * 49.3))
    assert seconds == pytest.approx(28398, abs=1)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "training on the CPU" in message
    assert "about 7.9 h" in message and "an estimate" in message
    assert "6000 images x 150 epochs at ~49 images/s for width 1" in message
    assert f"--configfile {LAPTOP_PRESET}" in message
    assert "training.device: cpu" in message


def test_settings_object_is_accepted(caplog):
    """A resolved Settings gives the same estimate as its configuration. Its device is the
    resolved one ('cpu', as if chosen), so the job warns from the configuration it was given,
    where ``auto`` is still visible (tests/training/test_job.py)."""
    config = preset("config")
    settings = Settings.from_config(config)
    assert settings.device == "cpu"
    assert estimate_cpu_seconds(settings, 6000, 10000) == pytest.approx(
        estimate_cpu_seconds(config, 6000, 10000)
    )
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        assert warn_if_slow_on_cpu(settings, "cpu", 6000, LOG, n_test=10000) is None
        assert warn_if_slow_on_cpu(config, "cpu", 6000, LOG, n_test=10000) == pytest.approx(
            estimate_cpu_seconds(config, 6000, 10000)
        )
    assert len(caplog.records) == 1


def test_explicit_cpu_silences_it(caplog):
    config = preset("config")
    config["training"]["device"] = "cpu"
    with caplog.at_level(logging.DEBUG):
        assert warn_if_slow_on_cpu(config, torch.device("cpu"), 6000, LOG, n_test=10000) is None
    assert caplog.records == []


def test_gpu_and_small_presets_are_silent(caplog):
    config = preset("config")
    laptop, smoke = preset("laptop"), preset("smoke")
    with caplog.at_level(logging.DEBUG):
        assert warn_if_slow_on_cpu(config, torch.device("cuda", 0), 6000, LOG) is None
        # The laptop preset: 500 images x 120 epochs at width 1/4 is a few minutes on a CPU.
        assert estimate_cpu_seconds(laptop, 500, 1000) < SLOW_SECONDS / 10
        assert warn_if_slow_on_cpu(laptop, torch.device("cpu"), 500, LOG, n_test=1000) is None
        assert warn_if_slow_on_cpu(smoke, torch.device("cpu"), 512, LOG, n_test=500) is None
    assert caplog.records == []
