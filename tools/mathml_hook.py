"""MkDocs hook: typeset every formula as MathML when the site is built, so that the docs need no
JavaScript renderer and no network (browsers render MathML Core natively).

`pymdownx.arithmatex` (generic mode) wraps each formula of the pages and of the docstrings that
mkdocstrings renders as `<span class="arithmatex">\\(…\\)</span>` (inline) or
`<div class="arithmatex">\\[…\\]</div>` (display); this hook replaces each by the MathML that
`latex2mathml` (a pure-Python converter from the package index) produces. Two gaps of that
converter are closed here:

- it does not know `\\arg`: `\\arg\\max` and `\\arg\\min` become its `\\argmax`/`\\argmin`, a lone
  `\\arg` an upright operator; and it keeps TeX's control space `\\ ` as a literal backslash when a
  line break follows the backslash: that becomes `\\ `; and inside `\\text{…}` it keeps the backslash
  of an escaped character (`living\\_reward`): the character is written plain;
- it styles a letter by `mathvariant` (`\\mathbf a`, `\\mathcal N`, `\\mathbb R`), which MathML Core
  browsers ignore except for `normal`, so `\\mathcal N` showed as a plain N: such letters are
  written as their Unicode mathematical alphanumeric characters (𝐚, 𝒩, ℝ) instead.

A formula that cannot be converted, or whose MathML still holds a TeX command or an unrendered
`mathvariant`, fails the build, naming the page and the formula.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

from latex2mathml.converter import convert

_INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)
_DISPLAY = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', re.S)

# TeX left in the output: a backslash before letters (latex2mathml copies unknown commands).
TEX_IN_MATHML = re.compile(r"\\[A-Za-z]+")
# mathvariant values and the Unicode names of their styled letters (MATHEMATICAL BOLD SMALL A …).
_VARIANTS = {
    "bold": "BOLD",
    "italic": "ITALIC",
    "bold-italic": "BOLD ITALIC",
    "script": "SCRIPT",
    "bold-script": "BOLD SCRIPT",
    "fraktur": "FRAKTUR",
    "bold-fraktur": "BOLD FRAKTUR",
    "double-struck": "DOUBLE-STRUCK",
    "sans-serif": "SANS-SERIF",
    "bold-sans-serif": "SANS-SERIF BOLD",
    "monospace": "MONOSPACE",
}
# Letters that Unicode encodes outside the mathematical block (its "holes").
_HOLES = {
    ("SCRIPT", "CAPITAL B"): "ℬ",
    ("SCRIPT", "CAPITAL E"): "ℰ",
    ("SCRIPT", "CAPITAL F"): "ℱ",
    ("SCRIPT", "CAPITAL H"): "ℋ",
    ("SCRIPT", "CAPITAL I"): "ℐ",
    ("SCRIPT", "CAPITAL L"): "ℒ",
    ("SCRIPT", "CAPITAL M"): "ℳ",
    ("SCRIPT", "CAPITAL R"): "ℛ",
    ("SCRIPT", "SMALL E"): "ℯ",
    ("SCRIPT", "SMALL G"): "ℊ",
    ("SCRIPT", "SMALL O"): "ℴ",
    ("FRAKTUR", "CAPITAL C"): "ℭ",
    ("FRAKTUR", "CAPITAL H"): "ℌ",
    ("FRAKTUR", "CAPITAL I"): "ℑ",
    ("FRAKTUR", "CAPITAL R"): "ℜ",
    ("FRAKTUR", "CAPITAL Z"): "ℨ",
    ("DOUBLE-STRUCK", "CAPITAL C"): "ℂ",
    ("DOUBLE-STRUCK", "CAPITAL H"): "ℍ",
    ("DOUBLE-STRUCK", "CAPITAL N"): "ℕ",
    ("DOUBLE-STRUCK", "CAPITAL P"): "ℙ",
    ("DOUBLE-STRUCK", "CAPITAL Q"): "ℚ",
    ("DOUBLE-STRUCK", "CAPITAL R"): "ℝ",
    ("DOUBLE-STRUCK", "CAPITAL Z"): "ℤ",
    ("ITALIC", "SMALL H"): "ℎ",
}
_DIGITS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")
_STYLED = re.compile(r'<(mi|mn) mathvariant="([a-z-]+)">([^<]*)</\1>')


def styled_char(char: str, variant: str) -> str:
    """`char` in the style `variant` as one Unicode character (the character itself if Unicode has
    no such style of it)."""
    style = _VARIANTS[variant]
    if "A" <= char.upper() <= "Z" and char.isascii():
        letter = f"{'CAPITAL' if char.isupper() else 'SMALL'} {char.upper()}"
    elif char.isdigit() and char.isascii():
        letter = f"DIGIT {_DIGITS[int(char)]}"
    else:  # a Greek letter: GREEK SMALL LETTER PI -> MATHEMATICAL BOLD ITALIC SMALL PI
        name = unicodedata.name(char, "")
        if not name.startswith("GREEK "):
            return char
        letter = name.removeprefix("GREEK ").replace(" LETTER", "")
    if (style, letter) in _HOLES:
        return _HOLES[(style, letter)]
    try:
        return unicodedata.lookup(f"MATHEMATICAL {style} {letter}")
    except KeyError:
        return char


def _restyle(match: re.Match[str]) -> str:
    tag, variant, text = match.groups()
    if variant == "normal" or variant not in _VARIANTS:
        return match.group(0)
    chars = html.unescape(text)
    return f"<{tag}>{''.join(styled_char(c, variant) for c in chars)}</{tag}>"


def tex_to_mathml(source: str, display: bool) -> str:
    """One formula's MathML, with the two gaps above closed. Raises `ValueError` if TeX or an
    unrendered style is left in it."""
    # TeX's control space `\ ` also when the formula's line breaks right after the backslash
    # (latex2mathml keeps a backslash-newline as the text "\")
    tex = re.sub(r"\\[\n\r\t]", r"\\ ", source)
    # inside \text{…} latex2mathml keeps an escaped character's backslash (`living\_reward`)
    tex = re.sub(r"\\text\{([^{}]*)\}", lambda m: "\\text{" + re.sub(r"\\([_%#])", r"\1", m.group(1)) + "}", tex)
    tex = re.sub(r"\\arg\s*\\(max|min)(?![A-Za-z])", r"\\arg\1", tex)
    tex = re.sub(r"\\arg(?![A-Za-z])", r"\\operatorname{arg}", tex)
    out = _STYLED.sub(_restyle, convert(tex, display="block" if display else "inline"))
    text = html.unescape(re.sub(r"<[^>]*>", " ", out))  # the formula's visible characters
    left = sorted(set(TEX_IN_MATHML.findall(text)))
    if not left and "\\" in text:  # a backslash before a non-letter
        left = sorted({repr(text[i : i + 2]) for i in range(len(text)) if text[i] == "\\"})
    if left:
        raise ValueError(f"TeX left in the MathML: {', '.join(left)}")
    unstyled = sorted({v for v in re.findall(r'mathvariant="([a-z-]+)"', out) if v != "normal"})
    if unstyled:
        raise ValueError(f"mathvariant={', '.join(unstyled)} left (browsers ignore it)")
    return out


def _mathml(tex: str, display: bool, page: str) -> str:
    source = html.unescape(tex).strip()
    try:
        out = tex_to_mathml(source, display)
    except Exception as err:  # reported as a build failure
        raise RuntimeError(f"{page}: cannot typeset the formula {source!r}: {err}") from err
    return f'<div class="math-display">{out}</div>' if display else out


def on_page_content(content: str, page: Any, **_: Any) -> str:
    """Replace the arithmatex placeholders of one page by MathML."""
    name = getattr(getattr(page, "file", None), "src_path", "?")
    content = _DISPLAY.sub(lambda m: _mathml(m.group(1), True, name), content)
    return _INLINE.sub(lambda m: _mathml(m.group(1), False, name), content)
