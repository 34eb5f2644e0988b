"""Run names: the canonical text of a ratio is exact, round-trips, and the wildcard pattern
accepts exactly the names the formatter writes."""

import re

import pytest

from hw5repro.data.experiment import RUN_NAME_PATTERN, Run, format_ratio


@pytest.mark.parametrize(
    ("ratio", "text"),
    [(1e-05, "0.00001"), (0.1234567, "0.1234567"), (0, "0"), (1, "1"), (0.2, "0.2"), (0.5, "0.5")],
)
def test_ratio_text_is_exact_and_matches_the_pattern(ratio, text):
    assert format_ratio(ratio) == text
    assert float(text) == ratio
    run = Run("labels", float(ratio), 3)
    assert re.fullmatch(RUN_NAME_PATTERN, run.name), run.name
    assert Run.from_name(run.name) == run


@pytest.mark.parametrize(
    "name",
    [
        "labels_r1e-05_s0",
        "labels_r0.50_s0",
        "labels_r0.0_s0",
        "labels_r00.5_s0",
        "labels_r0.5_s01",
        "labels_r2_s0",
        "blur_r0_s0",
        "labels_r0.5",
    ],
)
def test_non_canonical_names_are_rejected(name):
    assert not re.fullmatch(RUN_NAME_PATTERN, name)
    with pytest.raises(ValueError, match="not a run name"):
        Run.from_name(name)
