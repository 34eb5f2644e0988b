"""The prose markup: one source, HTML (MathML) and LaTeX renderings, escaping in both."""

import pytest

from hw5repro.reporting.markup import (
    MarkupError,
    escape_markup,
    escape_tex,
    inline_html,
    inline_latex,
    math_to_mathml,
    to_html,
    to_latex,
)

NASTY = "50%_noise & more"
SOURCE = """**Question.** Can *any* net fit `Subset.targets` labels?

The fraction is $\\frac{9}{10} r$ and

$$\\sum_{i=1}^{N} x_i$$

- first item with $r = 1$
  continued
- second **bold** item
"""


def test_html_structure():
    html = to_html(SOURCE)
    assert html.startswith("<p><strong>Question.</strong> Can <em>any</em> net fit ")
    assert "<code>Subset.targets</code>" in html
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">' in html
    assert "<mfrac>" in html
    assert (
        '<div class="math-display"><math xmlns="http://www.w3.org/1998/Math/MathML" '
        'display="block">' in html
    )
    assert "<ul>\n<li>first item with <math" in html
    assert "continued</li>" in html and "<li>second <strong>bold</strong> item</li>" in html
    assert html.count("<p>") == 2


def test_latex_structure():
    tex = to_latex(SOURCE)
    assert tex.startswith(r"\textbf{Question.} Can \emph{any} net fit \texttt{Subset.targets} ")
    assert r"$\frac{9}{10} r$" in tex  # math verbatim
    assert "\\[\\sum_{i=1}^{N} x_i\\]" in tex
    assert "\\begin{itemize}\n  \\item first item with $r = 1$ continued\n" in tex
    assert "\\item second \\textbf{bold} item\n\\end{itemize}" in tex


def test_hostile_label_in_both_formats():
    assert to_html(f"Label {NASTY}.") == "<p>Label 50%_noise &amp; more.</p>"
    assert to_latex(f"Label {NASTY}.") == r"Label 50\%\_noise \& more."
    assert inline_html(NASTY) == "50%_noise &amp; more"
    assert inline_latex(NASTY) == r"50\%\_noise \& more"


def test_every_tex_special_is_escaped():
    assert escape_tex("\\&%$#_{}~^<>") == (
        r"\textbackslash{}\&\%\$\#\_\{\}\textasciitilde{}\textasciicircum{}"
        r"\textless{}\textgreater{}"
    )
    assert to_html("<script>alert(1)</script>") == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"


def test_inserted_values_cannot_become_markup():
    """Jinja inserts data through escape_markup: $, * and ` in data stay literal text."""
    value = "cost $5 * 2 `x`"
    assert to_html(escape_markup(value)) == "<p>cost $5 * 2 `x`</p>"
    assert to_latex(escape_markup(value)) == r"cost \$5 * 2 `x`"
    assert to_latex(escape_markup("a\\b")) == r"a\textbackslash{}b"


def test_unmatched_dollar_is_text():
    assert to_latex("price $5") == r"price \$5"
    assert to_html("price $5") == "<p>price $5</p>"


def test_bad_math_is_reported():
    with pytest.raises(MarkupError, match="frac"):
        to_html(r"$\frac{1}{$ and more")


def test_aligned_equations_become_a_table_of_rows():
    """latex2mathml lays out split, not aligned: an aligned block must not lose its rows."""
    mathml = math_to_mathml(r"\begin{aligned} a &= b + c \\ &= d \end{aligned}", display=True)
    assert mathml.count("<mtr>") == 2 and "<mi>&</mi>" not in mathml
    with pytest.raises(MarkupError, match="alignment &"):
        math_to_mathml("a &= b")
    assert "<mi>&#x00026;</mi>" in math_to_mathml(r"a \& b")  # an escaped & is a symbol


def test_one_letter_mathrm_stays_upright():
    """d y_l is the differential of y_l, not a product of two variables d and y_l."""
    mathml = math_to_mathml(r"\mathrm{d}y + \theta^{\mathrm{I}} + \theta^{\mathrm{II}}")
    assert mathml.count("<mtext>") == 2 and '<mi mathvariant="normal">I</mi>' in mathml
    assert "<mi>&#x00064;</mi>" not in mathml  # no italic d
