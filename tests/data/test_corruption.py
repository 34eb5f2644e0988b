"""Corrupted datasets: exact counts, fixed draws, true test labels, input corruptions."""

import pytest
import torch

from hw5repro.data import mnist
from hw5repro.data.corruption import make_corrupted, noisy_labels, to_float
from hw5repro.data.experiment import LABEL_NOISE, Run, runs_from_config, stream_seed

N = 6000


@pytest.fixture(scope="module")
def subset(tmp_path_factory, mnist_dir):
    raw = tmp_path_factory.mktemp("raw")
    mnist.fetch(raw, mnist_dir)
    return mnist.make_subset(raw, N, None, seed=42)


@pytest.mark.parametrize("ratio", [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
def test_label_noise_replaces_exactly_round_r_n(subset, ratio):
    artifact = make_corrupted(subset, Run("labels", ratio, 0))
    true, labels, wrong = subset["train_y"], artifact["labels"], artifact["mislabelled"]
    # the mask is exactly the examples whose label is not their class
    assert torch.equal(wrong, labels != true)
    # exactly round(r N) examples get a uniform draw: the same draws as noisy_labels makes
    replaced = torch.zeros(N, dtype=torch.bool)
    generator = torch.Generator().manual_seed(stream_seed(0, LABEL_NOISE))
    replaced[torch.randperm(N, generator=generator)[: round(ratio * N)]] = True
    assert torch.equal(labels[~replaced], true[~replaced])  # untouched elsewhere
    assert bool((replaced | ~wrong).all())  # only replaced labels are wrong
    # replacements are uniform over 10 classes: about 90% of them change the label
    changed = int(wrong.sum())
    assert changed == pytest.approx(0.9 * ratio * N, abs=4 * (0.09 * ratio * N) ** 0.5 + 1)
    assert int((replaced & ~wrong).sum()) == round(ratio * N) - changed  # drew their own class
    if ratio == 1.0:
        counts = torch.bincount(labels, minlength=10).float() / N
        assert torch.allclose(counts, torch.full((10,), 0.1), atol=0.015)


def test_labels_really_differ_from_the_truth(subset):
    # the seed's code set .targets on a Subset, which Subset ignores: nothing was randomised
    artifact = make_corrupted(subset, Run("labels", 1.0, 0))
    assert (artifact["labels"] != subset["train_y"]).float().mean() > 0.85


def test_draws_are_fixed_and_nested(subset):
    y = subset["train_y"]
    a1, m1 = noisy_labels(y, 0.4, seed=0)
    a2, m2 = noisy_labels(y, 0.4, seed=0)
    assert torch.equal(a1, a2) and torch.equal(m1, m2)  # made once: same seed, same labels
    big, big_mask = noisy_labels(y, 0.8, seed=0)
    assert bool((m1 & ~big_mask).sum() == 0)  # 40% corrupted set is inside the 80% one
    assert torch.equal(a1[m1], big[m1])
    other, other_mask = noisy_labels(y, 0.4, seed=1)
    assert not torch.equal(m1, other_mask)


def test_saved_artifact_round_trips_and_test_labels_untouched(subset, tmp_path):
    artifact = make_corrupted(subset, Run("labels", 0.6, 0))
    torch.save(artifact, tmp_path / "a.pt")
    loaded = torch.load(tmp_path / "a.pt", weights_only=True)
    assert torch.equal(loaded["labels"], artifact["labels"])
    assert loaded["train_x"] is None and loaded["test_x"] is None
    assert "test_y" not in loaded  # the test set keeps its true labels (from the subset)


def test_shuffled_pixels_one_permutation_for_train_and_test(subset):
    art = make_corrupted(subset, Run("shuffled_pixels", 0.0, 0))
    perm = art["permutation"]
    assert sorted(perm.tolist()) == list(range(784)) and not torch.equal(perm, torch.arange(784))
    x, tx = to_float(subset["train_x"]).flatten(1), to_float(subset["test_x"]).flatten(1)
    assert torch.equal(art["train_x"].flatten(1), x[:, perm])
    assert torch.equal(art["test_x"].flatten(1), tx[:, perm])
    assert torch.equal(art["labels"], subset["train_y"]) and not art["mislabelled"].any()


def test_random_pixels_permute_each_image_independently(subset):
    art = make_corrupted(subset, Run("random_pixels", 0.0, 0))
    x, rx = to_float(subset["train_x"]).flatten(1), art["train_x"].flatten(1)
    assert torch.equal(rx.sort(1).values, x.sort(1).values)  # a permutation of each image
    assert art["test_x"] is None  # test images keep their pixels
    # different images get different permutations: the pixel-wise mean image is flat
    mean_image = rx.mean(0)
    assert mean_image.std() < 0.2 * x.mean(0).std()


def test_gaussian_inputs_match_training_mean_and_variance(subset):
    art = make_corrupted(subset, Run("gaussian", 0.0, 0))
    x = to_float(subset["train_x"])
    g = art["train_x"]
    assert g.shape == x.shape
    assert g.mean().item() == pytest.approx(x.mean().item(), abs=2e-3)
    assert g.std().item() == pytest.approx(x.std().item(), rel=2e-3)
    again = make_corrupted(subset, Run("gaussian", 0.0, 0))["train_x"]
    assert torch.equal(g, again)  # fixed, not redrawn


def test_run_grid_from_config():
    config = {
        "experiment": {
            "label_ratios": [0, 0.5, 1.0],
            "input_corruptions": ["gaussian"],
            "seeds": [0, 3],
        }
    }
    names = [r.name for r in runs_from_config(config)]
    assert names == [
        "gaussian_r0_s0",
        "gaussian_r0_s3",
        "labels_r0_s0",
        "labels_r0_s3",
        "labels_r0.5_s0",
        "labels_r0.5_s3",
        "labels_r1_s0",
        "labels_r1_s3",
    ]
    assert Run.from_name("labels_r0.2_s7") == Run("labels", 0.2, 7)
    with pytest.raises(ValueError):
        Run.from_name("noise_r0.2_s7")
