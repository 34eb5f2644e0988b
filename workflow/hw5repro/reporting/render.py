"""The report: one content model (:mod:`.sections`), two renderings.

``render_report`` renders each section's prose once (Jinja, with its JSON data) into the markup of
:mod:`.markup`, converts it to HTML and LaTeX, reads the tables, copies the figures beside the HTML
and fills the layouts report/index.html.j2 and report/report.tex.j2.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import shutil
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

from .markup import escape_markup, escape_tex, inline_html, inline_latex, to_html, to_latex
from .sections import ReportError, Section, load_sections

log = logging.getLogger(__name__)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def num(value, digits: int | None = None) -> str:
    """Thousands separators: 6000 -> '6,000'; num(1234.5, 1) -> '1,234.5'; None -> 'n/a'."""
    if _missing(value):
        return "n/a"
    if digits is None:
        if isinstance(value, numbers.Integral) or float(value).is_integer():
            return f"{int(value):,}"
        digits = 2
    return f"{float(value):,.{digits}f}"


def pct(value, digits: int = 1) -> str:
    """Fraction -> percentage: 0.953 -> '95.3%'."""
    return "n/a" if _missing(value) else f"{100 * float(value):.{digits}f}%"


def seconds(value) -> str:
    """Wall time in readable units: 12.3 s, 4.5 min, 2.1 h."""
    if _missing(value):
        return "n/a"
    value = float(value)
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.2f} h"


def listing(value) -> str:
    """A list as 'a, b and c'; a scalar as itself."""
    if not isinstance(value, (list, tuple)):
        return str(value)
    items = [str(v) for v in value]
    return " and ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else "".join(items)


def cell(value, decimals: int | None = None, numeric_column: bool = True) -> tuple[str, bool]:
    """A table cell as (text, is_numeric); ``decimals``: a float column's digits; a missing value
    is "–", aligned as its column."""
    if _missing(value):
        return "–", numeric_column
    if isinstance(value, bool):
        return str(value), False
    if isinstance(value, numbers.Integral):
        return f"{value:,}", True
    if isinstance(value, numbers.Real):
        if decimals is None:
            decimals = 0 if float(value).is_integer() else 3
        if decimals < 0:  # a column of tiny values or of values spanning many magnitudes
            return ("0" if value == 0 else f"{float(value):.4e}"), True
        return f"{float(value):,.{decimals}f}", True
    return str(value), False


def column_decimals(values: pd.Series) -> int | None:
    """Digits for a float column, the same for every row: the fewest (up to 3) that show every
    value exactly (0.0, 0.5, 1.0 -> 1), else by magnitude (0.953, 12.35, 1,234.5; 2.394e-05)."""
    if not pd.api.types.is_float_dtype(values):
        return None
    finite = values.dropna()
    if finite.empty:
        return 0
    for digits in range(4):  # exact up to a relative 1e-9, so 1e-17 is not "0"
        if ((finite.round(digits) - finite).abs() <= 1e-9 * finite.abs()).all():
            return max(digits, 1) if digits else 0
    largest = finite.abs().max()
    nonzero = finite[finite != 0].abs()
    if largest < 0.01 or (len(nonzero) and largest / nonzero.min() > 1e4):
        return -1  # scientific notation
    return 3 if largest < 10 else 2 if largest < 100 else 1


FILTERS = {"num": num, "pct": pct, "seconds": seconds, "listing": listing}


def read_table(spec: dict, root: Path) -> dict:
    """A table spec {path, caption[, columns]} -> header and formatted rows. ``columns`` selects
    and orders columns: a list of names or a mapping name -> header label."""
    frame = pd.read_csv(root / spec["path"])
    columns = spec.get("columns")
    if columns:
        labels = dict(columns) if isinstance(columns, dict) else {c: c for c in columns}
        missing = [c for c in labels if c not in frame.columns]
        if missing:
            raise ReportError(f"{spec['path']}: no columns {missing} (has {list(frame.columns)})")
        frame = frame[list(labels)]
        header = [str(labels[c]) for c in frame.columns]
    else:
        header = [str(c) for c in frame.columns]
    digits = [column_decimals(frame[c]) for c in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    rows = [
        [cell(v, d, n) for v, d, n in zip(record, digits, numeric, strict=True)]
        for record in frame.itertuples(index=False, name=None)
    ]
    return {"header": header, "rows": rows, "align": "".join("r" if n else "l" for n in numeric)}


def figure_target(path: str) -> str:
    """Where a figure lands in figures/ beside the HTML, without a leading results/ or
    results/figures/: results/figures/x.png -> figures/x.png, results/p/f.png -> figures/p/f.png."""
    rel = Path(path)
    if rel.parts and rel.parts[0] == "results":
        rel = Path(*rel.parts[1:])
    if len(rel.parts) > 1 and rel.parts[0] == "figures":
        rel = Path(*rel.parts[1:])
    return (Path("figures") / rel).as_posix()


def _environment(report_dir: Path, **options) -> jinja2.Environment:
    """Jinja over the templates of ``report_dir``, strict about undefined names, with FILTERS."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(report_dir)), undefined=jinja2.StrictUndefined, **options
    )
    env.filters.update(FILTERS)
    return env


def markup_environment(report_dir: Path) -> jinja2.Environment:
    """Jinja for the prose: inserted values are escaped for the markup (then for HTML/LaTeX)."""
    return _environment(
        report_dir, finalize=escape_markup, keep_trailing_newline=True, autoescape=False
    )


def html_environment(report_dir: Path) -> jinja2.Environment:
    return _environment(report_dir, autoescape=True)


def _tex_finalize(value):
    return value if isinstance(value, Markup) else escape_tex("" if value is None else value)


def tex_environment(report_dir: Path) -> jinja2.Environment:
    """Jinja for LaTeX: ((* block *)), ((( var ))), ((= comment =)); every value is LaTeX-escaped
    unless it is already LaTeX (Markup), and the ``tex`` filter escapes explicitly."""
    env = _environment(
        report_dir,
        block_start_string="((*",
        block_end_string="*))",
        variable_start_string="(((",
        variable_end_string=")))",
        comment_start_string="((=",
        comment_end_string="=))",
        finalize=_tex_finalize,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tex"] = lambda v: Markup(escape_tex(v))
    return env


def build_sections(
    sections: list[Section], report_dir: Path, root: Path, config: dict
) -> list[dict]:
    """Render every section once into both formats; tables and figures numbered globally."""
    env = markup_environment(report_dir)
    built, n_table, n_figure = [], 0, 0
    targets: dict[str, str] = {}  # figure_target -> source: two figures must not share a file
    for section in sections:
        data = {key: json.loads((root / p).read_text()) for key, p in section.data.items()}
        try:
            prose = env.get_template(section.text).render(data=data, config=config)
        except jinja2.TemplateError as err:
            raise ReportError(f"section {section.id} ({section.text}): {err}") from err
        tables = []
        for spec in section.tables:
            n_table += 1
            tables.append(
                {
                    **read_table(spec, root),
                    "number": n_table,
                    "label": Markup(f"tab:{section.id}-{len(tables) + 1}"),
                    "caption_html": Markup(inline_html(spec["caption"])),
                    "caption_tex": Markup(inline_latex(spec["caption"])),
                }
            )
        figures = []
        for spec in section.figures:
            n_figure += 1
            png = Path(spec["path"])
            pdf = png.with_suffix(".pdf")
            target = figure_target(spec["path"])
            if targets.setdefault(target, spec["path"]) != spec["path"]:
                raise ReportError(
                    f"figures {targets[target]} and {spec['path']} would both be copied to {target}"
                )
            has_pdf = (root / pdf).is_file()
            tex_src = Path(target).with_suffix(".pdf").as_posix() if has_pdf else target
            figures.append(
                {
                    "number": n_figure,
                    "label": Markup(f"fig:{section.id}-{len(figures) + 1}"),
                    "source": spec["path"],
                    "source_pdf": pdf.as_posix() if has_pdf else None,
                    "src": target,
                    "tex_src": Markup(tex_src),  # a path: LaTeX reads it verbatim, not as text
                    "caption_html": Markup(inline_html(spec["caption"])),
                    "caption_tex": Markup(inline_latex(spec["caption"])),
                }
            )
        built.append(
            {
                "id": section.id,
                "label": Markup(f"sec:{section.id}"),
                "title": section.title,
                "title_html": Markup(inline_html(section.title)),
                "title_tex": Markup(inline_latex(section.title)),
                "html": Markup(to_html(prose)),
                "tex": Markup(to_latex(prose)),
                "tables": tables,
                "figures": figures,
            }
        )
    return built


def copy_figures(built: list[dict], root: Path, out_dir: Path) -> list[Path]:
    copied = []
    for section in built:
        for fig in section["figures"]:
            sources = [(fig["source"], fig["src"])]
            if fig["source_pdf"]:
                sources.append((fig["source_pdf"], fig["tex_src"]))
            for source, target in sources:
                dest = out_dir / target
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / source, dest)
                copied.append(dest)
    return copied


def render_report(
    sections_file: str | Path,
    config: dict,
    provenance: dict,
    html_path: str | Path,
    tex_path: str | Path,
    report_dir: str | Path | None = None,
    root: str | Path = ".",
) -> dict:
    """Render index.html and report.tex (figures copied beside them). Returns the context."""
    sections_file = Path(sections_file)
    report_dir = Path(report_dir) if report_dir else sections_file.parent
    root = Path(root)
    html_path, tex_path = Path(html_path), Path(tex_path)
    built = build_sections(load_sections(sections_file, report_dir), report_dir, root, config)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tex_path.parent.mkdir(parents=True, exist_ok=True)
    copy_figures(built, root, html_path.parent)
    style = (report_dir / "style.css").read_text() if (report_dir / "style.css").is_file() else ""
    context = {
        "title": config["report"]["title"],
        "sections": built,
        "config": config,
        "provenance": provenance,
        "pdf": bool(config["report"]["pdf"]),
        "style": Markup(style),
    }
    html = html_environment(report_dir).get_template("index.html.j2").render(**context)
    html_path.write_text(html)
    tex = tex_environment(report_dir).get_template("report.tex.j2").render(**context)
    tex_path.write_text(tex)
    log.info("rendered %d sections to %s and %s", len(built), html_path, tex_path)
    return context


def report_job(sections_file, report_dir, config, provenance_path, outputs) -> None:
    """The Snakemake job behind rule report."""
    provenance = json.loads(Path(provenance_path).read_text())
    Path(outputs.figures).mkdir(parents=True, exist_ok=True)
    plain = json.loads(json.dumps(dict(config), default=str))
    render_report(
        sections_file, plain, provenance, outputs.html, outputs.tex, report_dir=report_dir
    )
