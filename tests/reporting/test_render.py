"""The report renderer on small fixture results: both formats, escaping, figures, provenance, PDF
rule wiring and regeneration (the workflow-level checks use the shared smoke run)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
import yaml

from helpers import (
    NASTY,
    REPO,
    edited,
    facts,
    planned_jobs,
    provenance_facts,
    render_problem6,
    snakemake,
)
from hw5repro.reporting import provenance as prov
from hw5repro.reporting.figures import FIGURES
from hw5repro.reporting.pdf import latex_problems
from hw5repro.reporting.render import figure_target, num, pct
from hw5repro.reporting.sections import ReportError, load_sections, rst_to_markup, section_inputs


@pytest.fixture
def rendered(tmp_path):
    return render_problem6(tmp_path)


def test_problem6_sections_are_in_the_real_content_model():
    sections = load_sections(REPO / "report" / "sections.yaml")
    ids = [s.id for s in sections]
    assert ids[-2:] == ["memorisation", "zhang_study"]
    inputs = section_inputs(sections)
    for name in FIGURES:
        assert f"results/figures/{name}.png" in inputs
    assert "results/tables/memorisation.json" in inputs


def test_both_formats_from_one_source(rendered):
    root, out = rendered
    html = (out / "index.html").read_text()
    tex = (out / "report.tex").read_text()
    # the same numbers, from the fixture JSON, in both renderings
    for text in (html, tex):
        assert "6,000" in text  # num filter: thousands separator
        assert "1,234,567" in text  # parameters
        assert "Problem 6: memorising random labels" in text
        # the devices and precisions of memorisation.json, as the method states them
        assert (
            "on cuda in bf16, with every training step captured once and replayed as a CUDA" in text
        )
    assert "100.0%" in html and r"100.0\%" in tex  # random-label training accuracy
    # conclusion derived from the data: memorised, test error monotone
    assert "memorised a training set whose labels are pure noise" in html
    assert "grows monotonically" in html
    assert "slowdown by a factor of 8.0" in html
    # math: MathML in HTML, verbatim LaTeX in the .tex
    assert "<math" in html and "<mfrac>" in html
    assert r"\frac{9}{10}" in tex and "$" not in re.sub(r"\\\$", "", html.split("<main>")[1])
    # figures: copied beside the HTML (PNG) and the PDF version used by LaTeX
    for name in FIGURES:  # beside the HTML in figures/, not figures/figures/
        assert (out / "figures" / f"{name}.png").is_file()
        assert f'src="figures/{name}.png"' in html
        assert f"{{figures/{name}.pdf}}" in tex
    assert not (out / "figures" / "figures").exists()
    # every figure of problem 6 once (zhang_figure1 in the Zhang section)
    assert html.count('<figure class="figure"') == len(FIGURES) == 9
    assert tex.count(r"\begin{figure}") == len(FIGURES)
    # tables with formatted numbers
    assert "1,234.5" in html and "1,234.5" in tex
    assert "labels_r0.5_s1" in html and r"labels\_r0.5\_s1" in tex


def test_hostile_strings_are_escaped_in_both_formats(rendered):
    _, out = rendered
    html = (out / "index.html").read_text()
    tex = (out / "report.tex").read_text()
    # title (config), caption (sections.yaml), data (JSON label), table cell (CSV), run.json
    assert "50%_noise &amp; more" in html
    assert "50%_noise & more" not in html
    assert tex.count(r"50\%\_noise \& more") >= 5
    # only the configuration, inside a Verbatim environment, keeps the raw string
    outside = re.sub(r"\\begin\{Verbatim\}.*?\\end\{Verbatim\}", "", tex, flags=re.S)
    assert "50%_noise & more" in tex and "50%_noise & more" not in outside
    assert r"\title{HW5 50\%\_noise \& more}" in tex


def test_fig_conclusion_follows_the_data(tmp_path):
    """If random labels were not fitted, the prose says what the run reached instead."""
    _, out = render_problem6(tmp_path, facts(random_train_acc=0.4321, random_fit=None))
    html = (out / "index.html").read_text()
    assert "did not memorise the random labels completely" in html
    assert "reached 43.2% training accuracy on random labels" in html
    assert "memorised a training set whose labels are pure noise" not in html
    assert "random labels take longer to fit than this run allowed" in html


def test_provenance_collects_git_runs_and_benchmarks(tmp_path):
    facts_ = provenance_facts(tmp_path)
    assert facts_["git"] == {
        "commit": None,
        "dirty": None,
        "note": "not a git repository (or git missing)",
    }
    assert facts_["devices"] == [
        {
            "device": "cuda",
            "device_name": NASTY,
            "precision": "bf16",
            "step": "CUDA graph",
            "software": "torch 2.11.0+cu130, CUDA 13.0, cuDNN 91002, Triton 3.5.0",
            "runs": 1,
        }
    ]
    assert facts_["runs"][0]["cudnn"] == 91002
    assert facts_["rules"] == [
        {"rule": "fetch_mnist", "jobs": 1, "total_s": 2.25, "max_s": 2.25},
        {"rule": "train", "jobs": 2, "total_s": 260.0, "max_s": 131.5},
    ]
    assert facts_["total_job_seconds"] == pytest.approx(262.25)
    assert yaml.safe_load(facts_["config_yaml"])["training"]["epochs"] == 150
    for name in ("python", "torch", "snakemake", "numpy", "pandas", "jinja2"):
        assert facts_["packages"][name]
    state = prov.git_state(REPO)
    if state["commit"] is not None:
        assert re.fullmatch(r"[0-9a-f]{40}", state["commit"])
        assert isinstance(state["dirty"], bool)


def test_provenance_names_each_training_step_with_its_epilogue(tmp_path):
    """The device table's step says whether the convolutions' epilogues ran as Triton kernels
    (training.conv_epilogue as the run's record states it), whether it ran PyTorch's
    deterministic algorithms and on a CPU with how many threads; runs alike are counted once.
    The facts come from the runs' run.json files."""
    base = {"device": "cuda", "device_name": "H100", "precision": "bf16", "cuda_graphs": True}
    runs = [
        base,
        base | {"conv_epilogue": "torch"},
        base | {"conv_epilogue": "triton"},
        base | {"cuda_graphs": False},
        base | {"device": "cpu", "cuda_graphs": False, "cpu_threads": 1},
        base | {"device": "cpu", "cuda_graphs": False, "cpu_threads": 2},
        base | {"device": "cpu", "cuda_graphs": False, "cpu_threads": 2},
        base | {"deterministic": True},
        base | {"deterministic": False, "conv_epilogue": "triton"},
    ]
    paths = []
    for i, run in enumerate(runs):
        paths.append(tmp_path / f"run{i:02d}" / "run.json")
        paths[-1].parent.mkdir()
        paths[-1].write_text(json.dumps(run))
    assert [(d["device"], d["step"], d["runs"]) for d in prov.devices(prov.run_infos(paths))] == [
        ("cuda", "CUDA graph", 2),
        ("cuda", "CUDA graph, bias, ReLU and max-pool as Triton kernels", 2),
        ("cuda", "eager", 1),
        ("cpu", "eager, 1 CPU thread", 1),
        ("cpu", "eager, 2 CPU threads", 2),
        ("cuda", "CUDA graph, deterministic algorithms", 1),
    ]


def test_provenance_section_in_both_formats(rendered):
    _, out = rendered
    html = (out / "index.html").read_text()
    tex = (out / "report.tex").read_text()
    assert 'id="provenance"' in html and r"\section{Provenance}" in tex
    for text in (html, tex):
        assert "not a git repository" in text
        assert "4.4 min" in text  # 131.5 + 128.5 s of train jobs
        assert "epochs: 150" in text  # the configuration as YAML
    assert "PDF version: not built" in html


def test_every_caption_has_one_source():
    """sections.yaml names a caption file for each table and figure, and each output flagged
    for Snakemake's report names one of the same files: no caption is written twice."""
    captions = {}  # result path -> caption files that sections.yaml names for it
    for section in yaml.safe_load((REPO / "report" / "sections.yaml").read_text()):
        for item in section.get("tables", []) + section.get("figures", []):
            assert re.fullmatch(r"captions/\w+\.rst", item["caption"]), item
            assert (REPO / "report" / item["caption"]).is_file(), item["caption"]
            captions.setdefault(item["path"], set()).add(item["caption"])
    flagged = {}
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        pairs = re.findall(
            r'report\(\s*f?"([^"]+)",\s*(?:patterns=[^,]+,\s*)?caption=f?"\.\./\.\./report/([^"]+)"',
            smk.read_text(),
        )
        for path, caption in pairs:
            for name in FIGURES if "{name}" in path else [None]:
                flagged[path.format(name=name)] = caption.format(name=name)
    assert len(flagged) >= 20
    for path, caption in flagged.items():
        assert (REPO / "report" / caption).is_file(), caption
        if path in captions:
            assert caption in captions[path], (path, caption, captions[path])
    assert {f"results/figures/{name}.png" for name in FIGURES} <= set(flagged) & set(captions)


def test_figures_land_once_under_figures():
    assert figure_target("results/figures/train_loss.png") == "figures/train_loss.png"
    assert figure_target("results/problems/backprop/figure.png") == (
        "figures/problems/backprop/figure.png"
    )


def test_caption_markup_from_rst():
    assert rst_to_markup("A :math:`\\partial J`,\n``code`` and *it*.\n") == (
        "A $\\partial J$, `code` and *it*."
    )


def test_filters():
    assert num(6000) == "6,000" and num(1234.5, 1) == "1,234.5" and num(None) == "n/a"
    assert num(3.0) == "3" and pct(0.953) == "95.3%" and pct(float("nan")) == "n/a"


def test_bad_sections_file_is_rejected(tmp_path):
    (tmp_path / "sections.yaml").write_text(
        yaml.safe_dump([{"id": "a", "title": "A", "text": "missing.md"}])
    )
    with pytest.raises(ReportError, match="missing.md"):
        load_sections(tmp_path / "sections.yaml")
    (tmp_path / "a.md").write_text("x")
    (tmp_path / "sections.yaml").write_text(
        yaml.safe_dump(
            [{"id": "a", "title": "A", "text": "a.md"}, {"id": "a", "title": "B", "text": "a.md"}]
        )
    )
    with pytest.raises(ReportError, match="unique"):
        load_sections(tmp_path / "sections.yaml")
    # a caption is a file of captions/ (its one source), not inline text
    figure = {"path": "results/x.png", "caption": "An inline caption"}
    (tmp_path / "sections.yaml").write_text(
        yaml.safe_dump([{"id": "a", "title": "A", "text": "a.md", "figures": [figure]}])
    )
    with pytest.raises(ReportError, match="must name a file captions/<name>.rst"):
        load_sections(tmp_path / "sections.yaml")
    figure["caption"] = "captions/missing.rst"
    (tmp_path / "sections.yaml").write_text(
        yaml.safe_dump([{"id": "a", "title": "A", "text": "a.md", "figures": [figure]}])
    )
    with pytest.raises(ReportError, match="caption file .*missing.rst"):
        load_sections(tmp_path / "sections.yaml")


def test_latex_log_problems():
    log = (
        "LaTeX Warning: Reference `fig:x' on page 2 undefined on input line 40.\n"
        "LaTeX Warning: There were undefined references.\nOutput written on report.pdf\n"
    )
    assert len(latex_problems(log)) == 2
    assert latex_problems("Output written on report.pdf (9 pages).") == []


# --- the workflow (shared smoke run) ----------------------------------------------------------


@pytest.mark.slow
def test_smoke_run_writes_the_report(smoke_run):
    out = smoke_run / "results" / "report"
    html = (out / "index.html").read_text()
    assert (out / "report.tex").is_file()
    facts_ = json.loads((out / "provenance.json").read_text())
    assert facts_["runs"] and {r["device"] for r in facts_["runs"]} <= {"cpu", "cuda"}
    assert any(rule["rule"] == "train" for rule in facts_["rules"])
    assert "Problem 6" in html and "<math" in html
    for name in FIGURES:
        assert (out / "figures" / f"{name}.png").is_file()
    assert (out / "figures" / "problems" / "backprop" / "figure.png").is_file()
    assert not (out / "figures" / "figures").exists()


def _dry_run_rules(workdir: Path) -> set[str]:
    return set(planned_jobs(workdir, workdir / "config.yaml")) - {"all"}


@pytest.fixture(scope="module")
def up_to_date(smoke_run):
    """The smoke run, brought up to date (a no-op unless the code changed since it ran)."""
    snakemake(smoke_run, smoke_run / "config.yaml", "--cores", "2")
    return smoke_run


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    ["index.html.j2", "sections/06_memorisation.md", "sections.yaml", "captions/train_loss.rst"],
)
def test_changing_a_template_reruns_only_the_report(up_to_date, name):
    """Editing a layout, a section's prose, sections.yaml or a caption reruns the report rules and
    nothing else. Snakemake 9 ignores a bare touch when the checksum is unchanged, so the file
    gets a trailing newline; its bytes and mtime are restored afterwards."""
    smoke_run = up_to_date
    assert _dry_run_rules(smoke_run) == set()
    with edited(REPO / "report" / name):
        # provenance reruns too when the edit turns a clean checkout dirty (it records that flag)
        assert _dry_run_rules(smoke_run) - {"provenance"} == {"report"}
    assert _dry_run_rules(smoke_run) == set()


@pytest.mark.slow
def test_snakemake_report_zip(smoke_run):
    snakemake(smoke_run, smoke_run / "config.yaml", "--report", "results/snakemake-report.zip")
    archive = smoke_run / "results" / "snakemake-report.zip"
    assert archive.is_file()
    names = zipfile.ZipFile(archive).namelist()
    for name in FIGURES:
        assert any(n.endswith(f"{name}.png") for n in names), name
    assert any(n.endswith("index.html") and "report" in n for n in names)
