"""Problem 5: parameter and operation counts equal the seed's Tables 1 and 2 and torch's."""

import pytest

from hw5repro.problems import inception_cost as ic

TABLE_1 = {  # module 1 (naive): conv1, conv2, conv3, TOTAL
    "parameters": [32_896, 442_560, 614_496, 1_089_952],
    "additions": [33_554_432, 452_984_832, 629_145_600, 1_115_684_864],
    "multiplications": [33_554_432, 452_984_832, 629_145_600, 1_115_684_864],
    "activations": [131_072, 196_608, 98_304, 425_984],
}
TABLE_2 = {  # module 2 (bottleneck): conv1 .. conv6, TOTAL
    "parameters": [32_896, 16_448, 110_784, 16_448, 153_696, 16_448, 346_720],
    "additions": [
        33_554_432,
        16_777_216,
        113_246_208,
        16_777_216,
        157_286_400,
        16_777_216,
        354_418_688,
    ],
    "multiplications": [
        33_554_432,
        16_777_216,
        113_246_208,
        16_777_216,
        157_286_400,
        16_777_216,
        354_418_688,
    ],
    "activations": [131_072, 65_536, 196_608, 65_536, 98_304, 65_536, 622_592],
}


@pytest.mark.parametrize(("convs", "expected"), [(ic.NAIVE, TABLE_1), (ic.BOTTLENECK, TABLE_2)])
def test_closed_forms_equal_the_seed_tables(convs, expected):
    table = ic.count_table(convs)
    assert list(table.index) == list(expected)
    assert list(table.columns) == [c.name for c in convs] + ["TOTAL"]
    for quantity, values in expected.items():
        assert table.loc[quantity].tolist() == values


@pytest.mark.parametrize("convs", [ic.NAIVE, ic.BOTTLENECK])
def test_torch_modules_agree_with_the_closed_forms(convs):
    measured = ic.torch_counts(convs)
    table = ic.count_table(convs)
    for quantity in ("parameters", "multiplications", "activations"):
        assert measured.loc[quantity].tolist() == table.loc[quantity].tolist()


def test_module_outputs_concatenate_all_branches():
    import torch

    x = torch.zeros(1, *ic.INPUT_SHAPE)
    assert ic.InceptionModule(ic.NAIVE)(x).shape == (1, 128 + 192 + 96 + 256, 32, 32)
    assert ic.InceptionModule(ic.BOTTLENECK)(x).shape == (1, 128 + 192 + 96 + 64, 32, 32)


def test_bottleneck_saves_two_thirds():
    tables = {name: ic.count_table(convs) for name, convs in ic.MODULES.items()}
    checks = {name: ic.torch_counts(convs) for name, convs in ic.MODULES.items()}
    summary = ic.results(tables, checks)
    assert summary["module1"]["torch_agrees"] and summary["module2"]["torch_agrees"]
    assert summary["ratio_parameters"] == pytest.approx(346_720 / 1_089_952)
    assert summary["ratio_multiplications"] == pytest.approx(354_418_688 / 1_115_684_864)
    assert summary["extra_activations"] == 622_592 - 425_984
    assert summary["saved_flops"] == 2 * (1_115_684_864 - 354_418_688)
