"""The user-facing docs stay honest: every preset they name exists, every measured time cites a
committed record that exists, every relative link resolves, the README stays short, and no
commit hash stands in the text (record folders are named in link targets only)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO

README = REPO / "README.md"
PERFORMANCE = REPO / "benchmarks" / "README.md"
DOCS = (README, PERFORMANCE)
#: A markdown link or image: [text](target) / ![alt](target).
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
#: A commit hash: 7 to 40 hex digits with at least one digit and one letter.
HASH = re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")
#: A duration: "193 s", "65.5 s", "17 min 27 s", "1-3 minutes".
TIME = re.compile(r"\d[\d.,]*\s*(?:s|min|minutes|h|hours)\b")


def links(doc: Path) -> list[tuple[str, Path]]:
    """(text, resolved path) of every relative link of ``doc`` (anchors and URLs left out)."""
    found = []
    for text, target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        found.append((text, (doc.parent / target.split("#")[0]).resolve()))
    return found


def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every markdown table of ``text``: (header cells, body rows of cells)."""
    found, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif block:
            found.append((block[0], block[2:]))  # header, separator, body
            block = []
    return found


def section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def records(cell: str, doc: Path) -> list[Path]:
    """The committed records (files or folders under benchmarks/results/) a cell links to."""
    results = (REPO / "benchmarks" / "results").resolve()
    cited = [(doc.parent / t).resolve() for _, t in LINK.findall(cell)]
    return [p for p in cited if p.is_relative_to(results)]


@pytest.mark.parametrize(
    "doc",
    (*DOCS, REPO / "benchmarks/results/gpu/README.md"),
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_every_relative_link_resolves(doc):
    missing = [f"{text} -> {path}" for text, path in links(doc) if not path.exists()]
    assert missing == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_preset_named_exists(doc):
    named = set(re.findall(r"config/([\w.+-]+)\.yaml", doc.read_text()))
    assert named, "the docs name no preset"
    assert sorted(n for n in named if not (REPO / "config" / f"{n}.yaml").is_file()) == []


def test_the_preset_table_lists_every_preset_with_a_record():
    ((header, rows),) = tables(section(README.read_text(), "Presets"))
    assert "2-core CPU" not in " ".join(header)  # the rows are measured on several machines
    presets = [re.fullmatch(r"`config/([\w-]+)\.yaml`", row[0]).group(1) for row in rows]
    on_disk = {p.stem for p in (REPO / "config").glob("*.yaml")} - {"schema"}
    assert sorted(presets) == sorted(on_disk)
    for row in rows:
        cited = records(row[-1], README)
        assert cited, f"{row[0]}: its time cites no record under benchmarks/results/"
        assert all(p.exists() for p in cited), row[-1]
        if TIME.search(row[-1]):  # a measured time names the machine it was measured on
            assert re.search(r"H100|CPU|GPU", row[-1]), row[-1]


def test_every_number_on_the_performance_page_cites_a_record():
    """Each row of the performance page's tables with a record column that gives a number cites
    an existing record, or says it has none (an option never measured)."""
    checked = 0
    for header, rows in tables(PERFORMANCE.read_text()):
        if header[-1] != "record":
            continue
        for row in rows:
            if not any(re.search(r"\d", cell) for cell in row[:-1]):
                assert row[-1] == "none", row
                continue
            cited = records(row[-1], PERFORMANCE)
            assert cited or row[-1] == "same two records", row
            assert all(p.exists() for p in cited), row
            checked += 1
    assert checked >= 10


def test_the_readme_is_at_most_10_kb():
    assert len(README.read_bytes()) <= 10_000


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_commit_hash_outside_link_targets(doc):
    text = LINK.sub(lambda m: f"[{m.group(1)}]()", doc.read_text())
    assert HASH.findall(text) == []


def test_the_readme_shows_the_report_screenshot_and_the_working_overlay_form():
    text = README.read_text()
    assert "![" in text and "(docs/report.png)" in text
    assert (REPO / "docs" / "report.png").stat().st_size < 300_000
    assert "snakemake --cores 2 --configfile config/smoke.yaml local.yaml" in text
    assert "snakemake --cores 8 --profile slurm" in text
    assert "results/report/index.html" in text
    # one --configfile flag per command: Snakemake keeps only the last of repeated flags
    assert all(line.count("--configfile") <= 1 for line in text.splitlines())
