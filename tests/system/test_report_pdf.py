"""report.pdf: the PDF rule on (a copy of) the smoke run, and hostile strings through pdflatex."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import render_problem6, require_system, snakemake, write_config
from hw5repro.reporting.pdf import compile_pdf, latex_problems

AUX = {".aux", ".fls", ".fdb_latexmk", ".log", ".out", ".toc"}


def require_tex() -> None:
    require_system(
        all(shutil.which(t) for t in ("latexmk", "pdflatex", "pdfinfo")),
        "TeX Live, latexmk or pdfinfo missing: run tests/system/install-report-tools.sh",
    )


def pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    return int(re.search(r"^Pages:\s+(\d+)", info.stdout, re.M).group(1))


@pytest.mark.system
@pytest.mark.slow
def test_pdf_rule_on_the_smoke_run(smoke_run, tmp_path):
    require_tex()
    work = tmp_path / "smoke"
    shutil.copytree(smoke_run, work, symlinks=True)  # keeps mtimes: only the report reruns
    config = write_config(
        work / "config.yaml", report={"title": "HW5 reproduced (smoke preset)", "pdf": True}
    )
    proc = snakemake(work, config, "--cores", "2")
    # the new setting reruns the report rules, not the experiment
    ran = set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, re.M))
    assert {"provenance", "report", "report_pdf"} <= ran
    assert not ran & {"fetch_mnist", "train", "memorisation_tables"}
    out = work / "results" / "report"
    pdf = out / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert pages(pdf) >= 6
    log = (out / "latex-build" / "report.log").read_text(errors="replace")
    assert not [p.name for p in out.iterdir() if p.suffix in AUX], "LaTeX files beside the PDF"
    assert latex_problems(log) == []
    assert "undefined" not in log.lower().replace("undefined references", "")
    html = (out / "index.html").read_text()
    assert '<a href="report.pdf">report.pdf</a>' in html


@pytest.mark.system
def test_hostile_strings_compile(tmp_path):
    """The fixture report (a label '50%_noise & more' in title, caption, data, tables, run.json)
    typesets without errors."""
    require_tex()
    _, out = render_problem6(tmp_path, pdf=True)
    pdf = compile_pdf(out / "report.tex", out / "report.pdf")
    assert pages(pdf) >= 5
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "50%_noise & more" in text


FAKE_LATEXMK = """#!/bin/sh
# Writes what latexmk -pdf leaves behind, into -outdir (as latexmk does).
for arg in "$@"; do
  case "$arg" in -outdir=*) out="${arg#-outdir=}";; -jobname=*) job="${arg#-jobname=}";; esac
done
for ext in pdf aux fls fdb_latexmk log out toc; do echo "$ext" > "$out/$job.$ext"; done
"""


def test_latex_auxiliary_files_stay_out_of_the_report_folder(tmp_path, monkeypatch):
    """Only report.pdf lands beside report.tex; latexmk's .aux, .log, ... stay in latex-build/
    (latexmk is replaced by a script that writes what the real one leaves)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "latexmk").write_text(FAKE_LATEXMK)
    (bin_dir / "latexmk").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    out = tmp_path / "results" / "report"
    out.mkdir(parents=True)
    (out / "report.tex").write_text("\\documentclass{article}")
    pdf = compile_pdf(out / "report.tex", out / "report.pdf")
    assert pdf == (out / "report.pdf").resolve() and pdf.read_text() == "pdf\n"
    assert sorted(p.name for p in out.iterdir()) == ["latex-build", "report.pdf", "report.tex"]
    assert {p.suffix for p in (out / "latex-build").iterdir()} == AUX | {".pdf"}
