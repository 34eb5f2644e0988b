"""The report's content model: report/sections.yaml, read and checked once. Each section names its
prose template, the JSON data it renders, and its tables and figures, each with a caption file
under report/captions (reStructuredText; the rules' report() flags name it too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SECTION_KEYS = {"id", "title", "text", "data", "tables", "figures"}
#: Folder of report/ with every caption, one file each (reStructuredText).
CAPTIONS = "captions"
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class ReportError(ValueError):
    """A malformed sections.yaml or a problem while rendering the report."""


@dataclass
class Section:
    id: str
    title: str
    text: str
    data: dict[str, str] = field(default_factory=dict)
    tables: list[dict] = field(default_factory=list)
    figures: list[dict] = field(default_factory=list)


def load_sections(path: str | Path, report_dir: str | Path | None = None) -> list[Section]:
    """Read and validate sections.yaml (ids unique, keys known, prose templates present)."""
    path = Path(path)
    report_dir = Path(report_dir) if report_dir else path.parent
    entries = yaml.safe_load(path.read_text()) or []
    if not isinstance(entries, list):
        raise ReportError(f"{path}: expected a list of sections")
    sections, seen = [], set()
    for n, entry in enumerate(entries, start=1):
        where = f"{path}: section {n}"
        if not isinstance(entry, dict):
            raise ReportError(f"{where}: expected a mapping")
        unknown = set(entry) - SECTION_KEYS
        missing = {"id", "title", "text"} - set(entry)
        if unknown or missing:
            raise ReportError(f"{where}: unknown keys {sorted(unknown)}, missing {sorted(missing)}")
        if not _ID.match(str(entry["id"])) or entry["id"] in seen:
            raise ReportError(f"{where}: id {entry['id']!r} is not a unique identifier")
        seen.add(entry["id"])
        if not (report_dir / entry["text"]).is_file():
            raise ReportError(f"{where}: prose template {report_dir / entry['text']} not found")
        items = {}
        for kind in ("tables", "figures"):
            items[kind] = []
            for item in entry.get(kind) or []:
                if not isinstance(item, dict) or "path" not in item or "caption" not in item:
                    raise ReportError(f"{where}: each of {kind} needs path and caption")
                items[kind].append(_with_caption(item, report_dir, where))
        data = dict(entry.get("data") or {})
        sections.append(Section(entry["id"], entry["title"], entry["text"], data, **items))
    return sections


def rst_to_markup(text: str) -> str:
    """A caption file (reStructuredText, as Snakemake's report reads it) in the report's markup:
    lines joined, ``:math:`x``` -> ``$x$``, double-backquoted code -> single-backquoted; bold and
    italic are the same in both."""
    text = " ".join(text.split())
    text = re.sub(r":math:`([^`]+)`", r"$\1$", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _with_caption(item: dict, report_dir: Path, where: str) -> dict:
    """A table or figure spec with the text of the caption file that its ``caption`` names."""
    name = str(item["caption"])
    path = report_dir / name
    if not (name.startswith(f"{CAPTIONS}/") and name.endswith(".rst")):
        raise ReportError(
            f"{where}: caption of {item['path']} must name a file {CAPTIONS}/<name>.rst, "
            f"not {name!r}"
        )
    if not path.is_file():
        raise ReportError(f"{where}: caption file {path} of {item['path']} not found")
    return {**item, "caption": rst_to_markup(path.read_text()), "caption_file": name}


def section_inputs(sections: list[Section]) -> list[str]:
    """Every workflow file the sections read (JSON data, table CSVs, figure PNGs), in order."""
    paths: list[str] = []
    for s in sections:
        paths += list(s.data.values()) + [t["path"] for t in s.tables]
        paths += [f["path"] for f in s.figures]
    return list(dict.fromkeys(paths))


def section_templates(sections: list[Section], report_dir: str | Path) -> list[str]:
    """The prose templates and caption files the sections read (inputs of the report rule)."""
    paths = []
    for s in sections:
        paths.append(s.text)
        paths += [item["caption_file"] for item in s.tables + s.figures]
    return list(dict.fromkeys(str(Path(report_dir) / p) for p in paths))
