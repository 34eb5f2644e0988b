"""report.pdf: the PDF rule on (a copy of) the smoke run, and hostile strings through pdflatex."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import require_system, snakemake, write_config
from hw5repro.report import compile_pdf, latex_problems


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
    assert not ran & {"train", "corrupt_dataset", "memorisation_tables"}
    out = work / "results" / "report"
    pdf = out / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert pages(pdf) >= 6
    log = (out / "report.log").read_text(errors="replace")
    assert latex_problems(log) == []
    assert "undefined" not in log.lower().replace("undefined references", "")
    html = (out / "index.html").read_text()
    assert '<a href="report.pdf">report.pdf</a>' in html


@pytest.mark.system
def test_hostile_strings_compile(tmp_path):
    """The fixture report (a label '50%_noise & more' in title, caption, data, tables, run.json)
    typesets without errors."""
    require_tex()
    import test_report as fx

    _, out = fx.render_problem6(tmp_path, pdf=True)
    pdf = compile_pdf(out / "report.tex", out / "report.pdf")
    assert pages(pdf) >= 5
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "50%_noise & more" in text
