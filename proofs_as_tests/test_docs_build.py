"""The docs build's own repairs (tools/mathml_hook.py, tools/tables_hook.py): what latex2mathml
cannot typeset is typeset, and TeX it would leave in the MathML fails the build.

The built site itself is checked in headless Chromium by `tools/check_docs.py` (in CI)."""

import pathlib
import sys

import pytest

pytest.importorskip("latex2mathml")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))

from mathml_hook import tex_to_mathml
from tables_hook import on_page_content as break_code_in_cells


@pytest.mark.parametrize("display", [False, True])
def test_argmax_is_one_upright_operator_with_no_tex_left(display):
    """latex2mathml does not know `\\arg` and copied it into the MathML as the text `\\arg`."""
    for tex, word in ((r"\arg\max_a Q(s,a)", "arg&#x02009;max"), (r"\arg \min_{x} f(x)", "arg&#x02009;min")):
        out = tex_to_mathml(tex, display)
        assert "\\" not in out, out
        assert f'<mo movablelimits="true">{word}</mo>' in out, out
    assert "<mo>arg</mo>" in tex_to_mathml(r"\arg z", display)


def test_styled_letters_are_unicode_letters_not_a_mathvariant():
    """Browsers (MathML Core) ignore `mathvariant` except "normal": `\\mathcal N` showed a plain N."""
    for tex, letter in (
        (r"\mathcal N(\mu, 1)", "𝒩"),
        (r"\mathcal B", "ℬ"),  # outside the mathematical block
        (r"\mathbb R", "ℝ"),
        (r"\mathbb E", "𝔼"),
        (r"\mathbf a^{i}", "𝐚"),
        (r"\mathbf 1_S", "𝟏"),
        (r"\boldsymbol\pi", "𝝅"),
        (r"\mathfrak B_\delta", "𝔅"),
    ):
        out = tex_to_mathml(tex, False)
        assert letter in out, (tex, out)
        assert "mathvariant" not in out.replace('mathvariant="normal"', ""), (tex, out)


def test_a_control_space_before_a_line_break_is_a_space():
    """`\\ ` (TeX's control space) at the end of a formula's line: latex2mathml kept the backslash
    as the text of an <mi>; it showed in §4's HAPPO formulas."""
    out = tex_to_mathml("\\mathbb E_{s\\sim\\rho,\\\n a}[x]", False)
    assert "\\" not in out, out
    assert "<mtext>&#x000A0;</mtext>" in out, out


def test_an_escaped_underscore_in_text_is_an_underscore():
    """`\\text{living\\_reward}` (the gridworld's parameter on the §1 page) showed `living\\_reward`."""
    out = tex_to_mathml(r"\text{living\_reward} + \text{50\%}", False)
    assert "<mtext>living_reward</mtext>" in out and "<mtext>50%</mtext>" in out, out


def test_tex_left_in_the_mathml_fails_the_build():
    with pytest.raises(ValueError, match=r"TeX left in the MathML: \\notacommand"):
        tex_to_mathml(r"x + \notacommand y", False)
    with pytest.raises(ValueError, match=r"TeX left in the MathML: '\\\\ '"):
        tex_to_mathml(r"x \@ y", False)  # a backslash before a non-letter, kept as text


def test_code_in_table_cells_breaks_only_at_its_parts():
    page = "<p><code>a_b</code></p><table><tr><td><code>test_x.py::test_a_b</code>, <code>f</code></td></tr></table>"
    out = break_code_in_cells(page)
    assert "<p><code>a_b</code></p>" in out  # outside tables: untouched
    assert "<td><code>test_<wbr>x.<wbr>py::<wbr>test_<wbr>a_<wbr>b</code>, <code>f</code></td>" in out
