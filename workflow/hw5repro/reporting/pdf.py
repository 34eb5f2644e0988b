"""The report as a PDF: latexmk on the LaTeX rendering, failing on what makes the PDF wrong."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

from .sections import ReportError

log = logging.getLogger(__name__)

_UNDEFINED = re.compile(
    r"(LaTeX Warning: (Reference|Citation) .* undefined"
    r"|There were undefined references"
    r"|LaTeX Warning: Label\(s\) may have changed)"
)


def latex_problems(log_text: str) -> list[str]:
    """Lines of a LaTeX log that mean the PDF is wrong (undefined references, unstable labels)."""
    return [line for line in log_text.splitlines() if _UNDEFINED.search(line)]


#: Folder beside report.pdf that keeps latexmk's auxiliary files out of the report folder.
LATEX_BUILD = "latex-build"


def compile_pdf(tex_path: str | Path, pdf_path: str | Path) -> Path:
    """latexmk -pdf on ``tex_path`` in its folder, outputs in :data:`LATEX_BUILD` beside
    ``pdf_path``, the PDF copied to ``pdf_path``; fails on errors and undefined references."""
    tex_path, pdf_path = Path(tex_path).resolve(), Path(pdf_path).resolve()
    latexmk = shutil.which("latexmk")
    if latexmk is None:
        raise ReportError(
            "latexmk not found: install TeX Live and latexmk "
            "(tests/system/install-report-tools.sh) or set report.pdf: false"
        )
    build = pdf_path.parent / LATEX_BUILD
    build.mkdir(parents=True, exist_ok=True)
    flags = ["-pdf", "-interaction=nonstopmode", "-halt-on-error"]
    cmd = [latexmk, *flags, f"-outdir={build}", f"-jobname={pdf_path.stem}", tex_path.name]
    proc = subprocess.run(cmd, cwd=tex_path.parent, capture_output=True, text=True)
    log.info("latexmk output:\n%s", (proc.stdout + proc.stderr)[-6000:])
    tex_log = build / f"{pdf_path.stem}.log"
    if proc.returncode != 0:
        tail = tex_log.read_text(errors="replace")[-3000:] if tex_log.is_file() else proc.stdout
        raise ReportError(f"latexmk failed ({proc.returncode}):\n{tail}")
    problems = latex_problems(tex_log.read_text(errors="replace"))
    if problems:
        raise ReportError("LaTeX left undefined references:\n" + "\n".join(problems))
    built = build / pdf_path.name
    if not built.is_file():
        raise ReportError(f"latexmk succeeded but wrote no {built}")
    shutil.copy2(built, pdf_path)
    return pdf_path
