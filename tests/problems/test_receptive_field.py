"""Problem 4: receptive-field rule, its empirical verification, and the problem rules run through
Snakemake (whose receptive-field job checks the real VGG16 channel counts)."""

import json

import pytest

from hw5repro.problems import receptive_field as rf

SMALL_CHANNELS = (4, 8)  # same region logic as 64/128 channels, fast on a CPU
PROBLEMS = ("backprop", "vanishing_gradients", "momentum", "receptive_field", "inception_cost")


def test_recursion_gives_the_expected_fields():
    fields = rf.output_fields()
    assert (fields["y1"].size, fields["y1"].jump, fields["y1"].start) == (5, 1, -2)
    assert (fields["y2"].size, fields["y2"].jump, fields["y2"].start) == (6, 2, -2)
    assert (fields["y3"].size, fields["y3"].jump, fields["y3"].start) == (16, 4, -6)
    assert [f.formula() for f in fields.values()] == ["i-2..i+2", "2i-2..2i+3", "4i-6..4i+9"]


@pytest.mark.parametrize(
    ("output", "index", "expected"),
    [
        ("y1", 20, (18, 22)),
        ("y1", 0, (0, 2)),
        ("y1", 223, (221, 223)),
        ("y2", 10, (18, 23)),
        ("y2", 0, (0, 3)),
        ("y2", 111, (220, 223)),
        ("y3", 5, (14, 29)),
        ("y3", 0, (0, 9)),
        ("y3", 1, (0, 13)),
        ("y3", 55, (214, 223)),
    ],
)
def test_regions_with_clipping(output, index, expected):
    assert rf.output_fields()[output].region(index) == expected


def test_recursion_matches_brute_force_connectivity():
    """Propagate index sets through the 1-D chain layer by layer and compare with the rule."""
    size = rf.IMAGE_SIZE
    deps = [{i} for i in range(size)]  # input index -> itself
    fields = rf.receptive_fields()
    for layer in rf.LAYERS:
        out_size = (len(deps) + 2 * layer.padding - layer.kernel) // layer.stride + 1
        deps = [
            set().union(
                *(
                    deps[q]
                    for q in range(
                        o * layer.stride - layer.padding,
                        o * layer.stride - layer.padding + layer.kernel,
                    )
                    if 0 <= q < len(deps)
                )
            )
            for o in range(out_size)
        ]
        for o in range(out_size):
            lo, hi = fields[layer.name].region(o, size)
            assert deps[o] == set(range(lo, hi + 1))


@pytest.fixture(scope="module")
def small_checks():
    return rf.verify(channels=SMALL_CHANNELS)


def test_gradient_support_equals_region_in_all_channels(small_checks):
    checks, supports = small_checks
    assert len(checks) == 12 and set(checks.output) == {"y1", "y2", "y3"}
    assert checks.support_equals_region.all()
    assert checks.all_channels.all()
    assert (checks.measured_rows == checks.predicted_rows).all()
    assert (checks.measured_cols == checks.predicted_cols).all()
    assert all(s.shape == (3, 224, 224) for s in supports.values())


def test_redrawing_outside_the_region_changes_nothing(small_checks):
    checks, _ = small_checks
    assert checks.outside_perturbation_unchanged.all()


def test_every_corner_of_the_region_matters_through_the_max_pools():
    """Raising one pixel far enough makes it win every max-pool window on its paths (the weights
    are positive), so even the region's corner pixels change y[:, i, j]."""
    net = rf.VGGPrefix(SMALL_CHANNELS, pool="max")
    x = rf.random_image(0)
    for output in rf.OUTPUTS:
        depth = int(output[1])
        _, i, j = rf.positions(output, SMALL_CHANNELS)[3]
        before = net(x, depth)[-1][0, :, i, j]
        (r0, r1), (c0, c1) = (
            rf.output_fields()[output].region(i),
            rf.output_fields()[output].region(j),
        )
        for channel, row, col in ((0, r0, c0), (1, r0, c1), (2, r1, c0), (2, r1, c1)):
            raised = x.clone()
            raised[0, channel, row, col] += 1e3
            after = net(raised, depth)[-1][0, :, i, j]
            assert (after > before).all(), (output, channel, row, col)


def test_max_pool_gradient_only_follows_the_argmax():
    support = rf.max_pool_gradient_support(SMALL_CHANNELS)
    _, i, j = rf.positions("y3", SMALL_CHANNELS)[3]
    region = rf.predicted_mask(rf.output_fields()["y3"], i, j)
    assert not (support & ~region).any()
    assert support.sum() < region.sum()


@pytest.mark.slow
def test_problem_rules_run_through_snakemake(smoke_run):
    """The smoke workflow (once per test session) ran the rules of problems 1-5."""
    tmp_path = smoke_run
    targets = [f"results/problems/{name}/results.json" for name in PROBLEMS]
    out = {
        name: json.loads((tmp_path / t).read_text())
        for name, t in zip(PROBLEMS, targets, strict=True)
    }
    for name in PROBLEMS:
        folder = tmp_path / "results" / "problems" / name
        assert (folder / "figure.png").stat().st_size > 0
        assert (folder / "figure.pdf").stat().st_size > 0
        assert list(folder.glob("*.csv"))
        assert (tmp_path / "results" / "logs" / "problems" / f"{name}.log").exists()
        assert (tmp_path / "results" / "benchmarks" / "problems" / f"{name}.tsv").exists()

    assert f"{out['backprop']['dA_1'][0][0]:.4e}" == "2.3943e-05"
    assert [f"{v:.4e}" for v in out["backprop"]["db_1"]] == [
        "4.8247e-05",
        "6.8722e-05",
        "4.9245e-05",
        "4.0678e-05",
    ]
    assert out["backprop"]["max_rel_diff_float64"] <= 1e-14
    assert out["vanishing_gradients"]["max_product_rel_error"] < 1e-12
    assert out["momentum"]["steps"] >= 1000
    assert out["momentum"]["max_gap_form_I_II"] <= 1e-12
    assert out["momentum"]["max_gap_form_I_torch"] <= 1e-12

    field = out["receptive_field"]  # the real VGG16 shapes: 64 and 128 channels
    assert field["channels"] == [64, 128] and field["positions_checked"] == 12
    assert field["all_supports_equal_regions"] and field["all_outside_perturbations_unchanged"]
    assert field["all_channels_in_support"]
    assert [field[y]["formula"] for y in ("y1", "y2", "y3")] == [
        "i-2..i+2",
        "2i-2..2i+3",
        "4i-6..4i+9",
    ]

    cost = out["inception_cost"]
    assert cost["module1"]["parameters"]["TOTAL"] == 1_089_952
    assert cost["module1"]["multiplications"]["TOTAL"] == 1_115_684_864
    assert cost["module1"]["additions"]["TOTAL"] == 1_115_684_864
    assert cost["module1"]["activations"]["TOTAL"] == 425_984
    assert cost["module2"]["parameters"]["TOTAL"] == 346_720
    assert cost["module2"]["multiplications"]["TOTAL"] == 354_418_688
    assert cost["module2"]["additions"]["TOTAL"] == 354_418_688
    assert cost["module2"]["activations"]["TOTAL"] == 622_592
    assert cost["module1"]["torch_agrees"] and cost["module2"]["torch_agrees"]
