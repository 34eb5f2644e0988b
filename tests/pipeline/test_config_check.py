"""hw5repro.pipeline.config_check: configuration errors in a few lines."""

from __future__ import annotations

from hw5repro.pipeline.config import defaults, load_schema, merge
from hw5repro.pipeline.config_check import (
    MAX_LISTED,
    REMOVED_KEYS,
    config_problems,
    full_errors_wanted,
)

SCHEMA = load_schema()


def _config(**overlay):
    return merge(defaults(SCHEMA), overlay)


def test_a_valid_configuration_has_no_problems():
    assert config_problems(_config(), SCHEMA) is None


def test_an_unknown_key_is_named_with_the_nearest_allowed_one():
    problems = config_problems(_config(training={"epoch": 3}), SCHEMA).splitlines()
    assert problems[1:] == ["  training.epoch: unknown key; did you mean training.epochs?"]


def test_an_unknown_key_without_a_near_one_lists_the_allowed_keys():
    config = _config()
    config["bogus"] = 1
    problems = config_problems(config, SCHEMA).splitlines()
    assert problems[1:] == [
        "  bogus: unknown key; allowed here: "
        "seed, data, experiment, model, training, resources, report"
    ]


def test_a_wrong_value_names_its_key_and_what_the_schema_wants():
    problems = config_problems(_config(training={"device": "gpu"}), SCHEMA).splitlines()
    assert problems[1:] == [
        "  training.device: 'gpu' does not match '^(auto|cpu|cuda|cuda:[0-9]+)$'"
    ]


def test_many_problems_are_counted_beyond_the_listed_ones():
    wrong = {f"key{i}": i for i in range(MAX_LISTED + 3)}
    problems = config_problems(_config(training=wrong), SCHEMA).splitlines()
    assert len(problems) == 1 + MAX_LISTED + 1
    assert problems[-1] == "  ... and 3 more"


def test_values_left_as_text_keep_their_hint():
    problems = config_problems(_config(training={"epochs": "20"}), SCHEMA)
    assert "training.epochs: a number, boolean, null or list given as text" in problems


def test_a_removed_key_fails_naming_it_and_what_to_do_instead():
    """A configuration that still names a removed option fails with the table's hint."""
    assert not any(
        key.split(".")[1] in SCHEMA["properties"][key.split(".")[0]]["properties"]
        for key in REMOVED_KEYS
    )
    config = _config(training={"runs_per_job": 2, "conv_bias": "add"})
    problems = config_problems(config, SCHEMA).splitlines()
    assert problems[1:] == [  # in the configuration's order
        "  training.runs_per_job: removed: every run is one job; delete the key "
        "(for one GPU, run jobs side by side with --cores)",
        "  training.conv_bias: renamed: use training.conv_epilogue (torch or triton)",
    ]


def test_full_output_on_request():
    assert not full_errors_wanted(["snakemake", "-n"], {})
    assert full_errors_wanted(["snakemake", "-n", "--verbose"], {})
    assert full_errors_wanted(["snakemake"], {"HW5_FULL_ERRORS": "1"})
    assert not full_errors_wanted(["snakemake"], {"HW5_FULL_ERRORS": "0"})
