"""The report's small prose markup, rendered to HTML (math as MathML) and to LaTeX (math verbatim).

Syntax (see report/README.md): paragraphs separated by blank lines; ``$...$`` inline and
``$$...$$`` display math (LaTeX); ``**bold**``, ``*italic*``, ```code```; lines starting with
``- `` form a bullet list; ``\\$``, ``\\*``, ``\\``` and ``\\\\`` stand for the literal character.
Everything else is plain text and is escaped for the target format, so no string (from the prose,
the configuration or the data) can break the HTML or the LaTeX file.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert as _latex_to_mathml


class MarkupError(ValueError):
    """Prose that cannot be rendered (for example math that latex2mathml rejects)."""


_INLINE = re.compile(
    r"""
      (?P<esc>\\[\\$*`])
    | \$\$(?P<dmath>.+?)\$\$
    | \$(?P<imath>[^$]+?)\$
    | `(?P<code>[^`]+)`
    | \*\*(?P<bold>.+?)\*\*
    | \*(?P<ital>[^*\s][^*]*?)\*
    """,
    re.S | re.X,
)

#: Characters with a meaning in the markup; ``escape_markup`` protects them in inserted strings.
MARKUP_SPECIALS = re.compile(r"([\\$*`])")

#: LaTeX's special characters: a backslash before each, or a command that prints it.
_TEX_SPECIALS = {
    **{c: "\\" + c for c in "&%$#_{}"},
    "\\": r"\textbackslash{}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}
_TEX_PATTERN = re.compile("|".join(re.escape(c) for c in _TEX_SPECIALS))


def escape_tex(text: object) -> str:
    """Plain text -> LaTeX source that prints exactly that text."""
    return _TEX_PATTERN.sub(lambda m: _TEX_SPECIALS[m.group(0)], str(text))


def escape_html(text: object) -> str:
    return html.escape(str(text), quote=True)


def escape_markup(text: object) -> str:
    """Plain text -> markup that reads as exactly that text (used for values inserted by Jinja)."""
    return MARKUP_SPECIALS.sub(r"\\\1", str(text))


#: What latex2mathml does not render as LaTeX does, rewritten before converting: an ``aligned``
#: environment (its ``&`` would come out as text and its lines run together; ``split`` gives the
#: same table) and a one-letter ``\mathrm`` (it would come out italic: d y reads as a product).
_MATHML_REWRITES = (
    (re.compile(r"\\(begin|end)\{aligned\}"), r"\\\1{split}"),
    (re.compile(r"\\mathrm\{([A-Za-z])\}"), r"\\text{\1}"),
)
_STRAY_AMPERSAND = re.compile(r"<m[ion]>&(amp;)?</m[ion]>")


def math_to_mathml(latex: str, display: bool = False) -> str:
    source = latex.strip()
    for pattern, replacement in _MATHML_REWRITES:
        source = pattern.sub(replacement, source)
    try:
        mathml = _latex_to_mathml(source, display="block" if display else "inline")
    except Exception as err:  # latex2mathml raises a zoo of exception types
        raise MarkupError(f"cannot convert math to MathML: {latex!r}: {err}") from err
    if _STRAY_AMPERSAND.search(mathml):
        raise MarkupError(
            f"cannot convert math to MathML: {latex!r}: an alignment & outside an environment "
            "that latex2mathml lays out as a table (use aligned or split)"
        )
    return mathml


class _Format:
    """How one target format writes each markup element."""

    def __init__(self, name: str):
        self.html = name == "html"

    def text(self, s: str) -> str:
        return escape_html(s) if self.html else escape_tex(s)

    def math(self, latex: str, display: bool) -> str:
        if self.html:
            return math_to_mathml(latex, display)
        return rf"\[{latex.strip()}\]" if display else f"${latex.strip()}$"

    def code(self, s: str) -> str:
        return f"<code>{escape_html(s)}</code>" if self.html else rf"\texttt{{{escape_tex(s)}}}"

    def bold(self, inner: str) -> str:
        return f"<strong>{inner}</strong>" if self.html else rf"\textbf{{{inner}}}"

    def italic(self, inner: str) -> str:
        return f"<em>{inner}</em>" if self.html else rf"\emph{{{inner}}}"

    def paragraph(self, inner: str) -> str:
        return f"<p>{inner}</p>" if self.html else inner

    def display_block(self, latex: str) -> str:
        if self.html:
            return f'<div class="math-display">{math_to_mathml(latex, True)}</div>'
        return rf"\[{latex.strip()}\]"

    def bullets(self, items: list[str]) -> str:
        if self.html:
            return "<ul>\n" + "\n".join(f"<li>{i}</li>" for i in items) + "\n</ul>"
        body = "\n".join(rf"  \item {i}" for i in items)
        return "\\begin{itemize}\n" + body + "\n\\end{itemize}"

    def join_blocks(self, blocks: list[str]) -> str:
        return "\n".join(blocks) if self.html else "\n\n".join(blocks)


def _inline(text: str, fmt: _Format) -> str:
    out: list[str] = []
    pos = 0
    for m in _INLINE.finditer(text):
        out.append(fmt.text(text[pos : m.start()]))
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "esc":
            out.append(fmt.text(value[1]))
        elif kind == "dmath":
            out.append(fmt.math(value, display=True))
        elif kind == "imath":
            out.append(fmt.math(value, display=False))
        elif kind == "code":
            out.append(fmt.code(value))
        elif kind == "bold":
            out.append(fmt.bold(_inline(value, fmt)))
        else:
            out.append(fmt.italic(_inline(value, fmt)))
    out.append(fmt.text(text[pos:]))
    return "".join(out)


def _blocks(text: str) -> list[tuple[str, object]]:
    """Split prose into ("para", text), ("list", [items]) and ("math", latex) blocks."""
    blocks: list[tuple[str, object]] = []
    for raw in re.split(r"\n[ \t]*\n", text.strip()):
        lines = [line.rstrip() for line in raw.strip("\n").splitlines() if line.strip()]
        if not lines:
            continue
        joined = "\n".join(line.strip() for line in lines)
        if joined.startswith("$$") and joined.endswith("$$") and joined.count("$$") == 2:
            blocks.append(("math", joined[2:-2]))
        elif lines[0].lstrip().startswith("- "):
            items: list[str] = []
            for line in lines:
                stripped = line.strip()
                if stripped.startswith("- "):
                    items.append(stripped[2:].strip())
                else:
                    items[-1] += " " + stripped
            blocks.append(("list", items))
        else:
            blocks.append(("para", " ".join(line.strip() for line in lines)))
    return blocks


def _render(text: str, fmt: _Format) -> str:
    rendered = []
    for kind, value in _blocks(text):
        if kind == "math":
            rendered.append(fmt.display_block(value))
        elif kind == "list":
            rendered.append(fmt.bullets([_inline(item, fmt) for item in value]))
        else:
            rendered.append(fmt.paragraph(_inline(value, fmt)))
    return fmt.join_blocks(rendered)


def to_html(text: str) -> str:
    """Markup -> HTML fragment (paragraphs, lists, MathML)."""
    return _render(text, _Format("html"))


def to_latex(text: str) -> str:
    """Markup -> LaTeX fragment (math kept verbatim)."""
    return _render(text, _Format("latex"))


def inline_html(text: str) -> str:
    """One line of markup (a caption or title) -> HTML without a paragraph wrapper."""
    return _inline(" ".join(text.split()), _Format("html"))


def inline_latex(text: str) -> str:
    return _inline(" ".join(text.split()), _Format("latex"))
