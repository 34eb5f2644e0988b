"""hw5repro.pipeline.command_line: a repeated --configfile is named before Snakemake drops it."""

from __future__ import annotations

import pytest

from hw5repro.pipeline.config_check import CommandLineError, check_configfiles, configfile_groups


@pytest.mark.parametrize(
    ("argv", "groups"),
    [
        (["snakemake", "-n", "--configfile", "a.yaml", "b.yaml"], [["a.yaml", "b.yaml"]]),
        (["snakemake", "--configfile", "a", "--configfile", "b"], [["a"], ["b"]]),
        (
            ["snakemake", "--configfile=a", "t1", "--configfiles", "b", "c", "-n"],
            [["a"], ["b", "c"]],
        ),
        (["snakemake", "--configf", "a", "--cores", "2", "--configfile=b"], [["a"], ["b"]]),
        (["snakemake", "--config", "seed=1", "--cores", "2"], []),
        (["snakemake", "all", "--cores", "2"], []),
    ],
)
def test_configfile_groups_follow_snakemakes_parser(argv, groups):
    assert configfile_groups(argv) == groups


def test_one_configfile_with_several_files_passes():
    check_configfiles(["snakemake", "t", "--cores", "2", "--configfile", "a.yaml", "b.yaml"])


def test_a_repeated_configfile_names_the_dropped_files_and_the_working_form():
    argv = ["snakemake", "--configfile", "a.yaml", "b.yaml", "-n", "--configfile=c.yaml"]
    with pytest.raises(CommandLineError) as error:
        check_configfiles(argv)
    message = str(error.value)
    assert "given 2 times" in message
    assert "keeps only the last (c.yaml)" in message
    assert "drop a.yaml b.yaml." in message
    assert "--configfile a.yaml b.yaml c.yaml" in message
