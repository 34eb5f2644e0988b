"""The report renderer on small fixture results: both formats, escaping, figures, provenance, PDF
rule wiring and regeneration (the workflow-level checks use the shared smoke run)."""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import REPO, edited, planned_jobs, snakemake
from hw5repro.reporting import provenance as prov
from hw5repro.reporting.figures import FIGURES
from hw5repro.plotting import plt
from hw5repro.reporting.render import (
    ReportError,
    figure_target,
    latex_problems,
    load_sections,
    num,
    pct,
    render_report,
    rst_to_markup,
    section_inputs,
)

NASTY = "50%_noise & more"


def stats(train_acc, test_acc, fit, runs=2, fitted=2, seconds=10.0):
    return {
        "runs": runs,
        "fitted_runs": fitted,
        "train_loss_mean": 0.1,
        "train_acc_mean": train_acc,
        "test_loss_mean": 2.0,
        "test_acc_mean": test_acc,
        "test_error_mean": 1 - test_acc,
        "train_seconds_mean": seconds,
        "epochs_to_fit_mean": fit,
    }


def facts(random_train_acc=1.0, random_fit=40.0):
    by_ratio = [
        {"ratio": 0.0, **stats(1.0, 0.97, 5.0, seconds=100.0)},
        {"ratio": 0.5, **stats(1.0, 0.60, 20.0, seconds=104.0)},
        {
            "ratio": 1.0,
            **stats(
                random_train_acc,
                0.10,
                random_fit,
                fitted=0 if random_fit is None else 2,
                seconds=101.0,
            ),
        },
    ]
    return {
        "fit_threshold": 0.99,
        "epochs": 150,
        "train_size": 6000,
        "test_size": 10000,
        "width": 1.0,
        "parameters": 1234567,
        "label_ratios": [0.0, 0.5, 1.0],
        "input_corruptions": ["shuffled_pixels", NASTY],
        "seeds": [0, 1],
        "random_labels": by_ratio[2] | {},
        "true_labels": by_ratio[0] | {},
        "by_ratio": by_ratio,
        "by_corruption": [
            {"corruption": "true_labels", "label": "true labels", **stats(1.0, 0.97, 5.0)},
            {"corruption": "shuffled_pixels", "label": "shuffled pixels", **stats(1.0, 0.5, 30.0)},
            {"corruption": "gaussian", "label": NASTY, **stats(1.0, 0.1, None, fitted=0)},
        ],
        "device": ["cuda"],
        "device_name": ["NVIDIA H100"],
        "precision": ["bf16"],
        "step": ["CUDA graph"],
        "runs_fused": [1],
    }


def write_results(root: Path, memorisation: dict | None = None) -> Path:
    """Fixture versions of the lead's problem-6 outputs (tables, JSON, PNG + PDF figures)."""
    tables = root / "results" / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    (tables / "memorisation.json").write_text(json.dumps(memorisation or facts()))
    rows = [
        {
            "run_id": f"labels_r{r}_s{s}",
            "corruption": "labels",
            "ratio": r,
            "seed": s,
            "kind": NASTY,
            "epochs": 150,
            "train_loss": 0.01,
            "train_acc": 1.0,
            "test_loss": 2.0,
            "test_acc": 0.9 - r * 0.8,
            "test_error": 0.1 + r * 0.8,
            "train_seconds": 1234.5,
            "epochs_to_fit": float("nan") if r == 1.0 else 10,
        }
        for r in (0.0, 0.5, 1.0)
        for s in (0, 1)
    ]
    final = pd.DataFrame(rows)
    final.to_csv(tables / "final_metrics.csv", index=False)
    summary = (
        final.groupby(["corruption", "ratio"])
        .agg(
            n_seeds=("seed", "size"),
            kind=("kind", "first"),
            train_acc_mean=("train_acc", "mean"),
            train_acc_sd=("train_acc", "std"),
            test_acc_mean=("test_acc", "mean"),
            test_acc_sd=("test_acc", "std"),
            test_error_mean=("test_error", "mean"),
            train_seconds_mean=("train_seconds", "mean"),
            epochs_to_fit_mean=("epochs_to_fit", "mean"),
            epochs_to_fit_sd=("epochs_to_fit", "std"),
            fitted_runs=("epochs_to_fit", "count"),
        )
        .reset_index()
    )
    summary["slowdown"] = summary["epochs_to_fit_mean"] / 10
    summary.to_csv(tables / "summary.csv", index=False)
    figures = root / "results" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for name in FIGURES:
        fig, ax = plt.subplots(figsize=(4, 2.5))
        ax.plot([0, 1, 2], [3, 1, 2])
        ax.set_title(name)
        fig.savefig(figures / f"{name}.png", dpi=60)
        fig.savefig(figures / f"{name}.pdf")
        plt.close(fig)
    return root


def provenance_facts(root: Path) -> dict:
    run = root / "results" / "runs" / "labels_r0_s0"
    run.mkdir(parents=True, exist_ok=True)
    (run / "run.json").write_text(
        json.dumps(
            {
                "device": "cuda",
                "device_name": NASTY,
                "precision": "bf16",
                "cuda_graphs": True,
                "torch": "2.11.0+cu130",
                "cuda": "13.0",
                "cudnn": 91002,
                "triton": "3.5.0",
                "parameters": 1234567,
                "wall_seconds": 130.0,
                "train_seconds": 120.0,
                "images_per_second": 5000.0,
            }
        )
    )
    root_bench = root / "results" / "benchmarks"
    bench = root_bench / "train"
    bench.mkdir(parents=True, exist_ok=True)
    header = "s\th:m:s\tmax_rss\n"
    (bench / "labels_r0_s0.tsv").write_text(header + "131.5\t0:02:11\t900\n")
    (bench / "labels_r0.5_s0.tsv").write_text(header + "128.5\t0:02:08\t900\n")
    (root_bench / "fetch_mnist.tsv").write_text(header + "2.25\t0:00:02\t50\n")
    # a stale benchmark of a run no longer in the configuration: not an input, not counted
    (bench / "labels_r0.9_s0.tsv").write_text(header + "1000.0\t0:16:40\t900\n")
    files = [bench / f"labels_r{r}_s0.tsv" for r in ("0", "0.5")] + [root_bench / "fetch_mnist.tsv"]
    return prov.collect(config(), prov.git_state(root), [run / "run.json"], files, root_bench)


def config(pdf: bool = False, title: str = "HW5 " + NASTY) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["report"] = {"title": title, "pdf": pdf}
    return cfg


def problem6_report_dir(tmp: Path) -> Path:
    """report/ with only the problem-6 sections of the real sections.yaml and their caption
    files, one caption carrying the hostile label."""
    report_dir = tmp / "report"
    report_dir.mkdir()
    for name in ("index.html.j2", "report.tex.j2", "style.css"):
        (report_dir / name).write_text((REPO / "report" / name).read_text())
    (report_dir / "sections").mkdir()
    (report_dir / "captions").mkdir()
    sections = [
        s
        for s in yaml.safe_load((REPO / "report" / "sections.yaml").read_text())
        if s["text"].startswith(("sections/06", "sections/07"))
    ]
    for s in sections:
        (report_dir / s["text"]).write_text((REPO / "report" / s["text"]).read_text())
        for item in s.get("tables", []) + s.get("figures", []):
            caption = item["caption"]
            (report_dir / caption).write_text((REPO / "report" / caption).read_text())
    (report_dir / sections[0]["figures"][0]["caption"]).write_text(
        f"Loss for {NASTY} with :math:`r`\n"
    )
    (report_dir / "sections.yaml").write_text(yaml.safe_dump(sections, sort_keys=False))
    return report_dir


def render_problem6(tmp_path: Path, memorisation: dict | None = None, pdf: bool = False):
    """Render the problem-6 sections from fixture results; returns (workdir, report folder)."""
    root = write_results(tmp_path / "work", memorisation)
    report_dir = problem6_report_dir(tmp_path)
    out = root / "results" / "report"
    old = os.getcwd()
    os.chdir(root)
    try:
        render_report(
            report_dir / "sections.yaml",
            config(pdf=pdf),
            provenance_facts(root),
            out / "index.html",
            out / "report.tex",
            report_dir=report_dir,
        )
    finally:
        os.chdir(old)
    return root, out


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


def test_provenance_names_each_training_step_with_its_bias_form(tmp_path):
    """The device table's step says how the convolutions added their bias (training.conv_bias
    as the run's record states it), whether the first convolution ran in Triton, whether
    evaluation ran the Triton epilogues, how many runs trained together, in which form (an
    older record without ``group_form`` was fused), whether it ran PyTorch's deterministic
    algorithms and on a CPU with how many threads; runs
    alike are counted once. The facts come from the runs' run.json files."""
    base = {"device": "cuda", "device_name": "H100", "precision": "bf16", "cuda_graphs": True}
    runs = [
        base,
        base | {"conv_bias": "add"},
        base | {"conv_bias": "gemm"},
        base | {"conv_bias": "after_pool"},
        base | {"conv_bias": "add", "triton_eval": True},
        base | {"conv_bias": "gemm", "first_conv": "triton"},
        base | {"first_conv": "torch"},
        base | {"conv_bias": "triton"},
        base | {"cuda_graphs": False, "runs_fused": 3},
        base | {"cuda_graphs": False, "runs_fused": 3, "group_form": "fused"},
        base | {"runs_fused": 6, "group_form": "streams"},
        base | {"device": "cpu", "cuda_graphs": False, "runs_fused": 2, "group_form": "streams"},
        base | {"device": "cpu", "cuda_graphs": False, "cpu_threads": 1},
        base | {"device": "cpu", "cuda_graphs": False, "cpu_threads": 2},
        base | {"deterministic": True},
        base | {"deterministic": False},
    ]
    paths = []
    for i, run in enumerate(runs):
        paths.append(tmp_path / f"run{i:02d}" / "run.json")
        paths[-1].parent.mkdir()
        paths[-1].write_text(json.dumps(run))
    assert [(d["step"], d["runs"]) for d in prov.devices(prov.run_infos(paths))] == [
        ("CUDA graph", 4),
        ("CUDA graph, bias as a matrix product", 1),
        ("CUDA graph, bias as a matrix product, after the pool where one follows", 1),
        ("CUDA graph, Triton evaluation epilogues", 1),
        ("CUDA graph, bias as a matrix product, first convolution in Triton", 1),
        ("CUDA graph, bias, ReLU and max-pool as Triton kernels", 1),
        ("eager, 3 runs fused", 2),
        ("CUDA graph, 6 runs side by side on CUDA streams", 1),
        ("eager, 2 runs side by side one after another", 1),
        ("eager, 1 CPU thread", 1),
        ("eager, 2 CPU threads", 1),
        ("CUDA graph, deterministic algorithms", 1),
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
