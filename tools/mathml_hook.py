"""MkDocs hook: typeset every formula as MathML when the site is built, so that the docs need no
JavaScript renderer and no network (browsers render MathML Core natively).

`pymdownx.arithmatex` (generic mode) wraps each formula of the pages and of the docstrings that
mkdocstrings renders as `<span class="arithmatex">\\(…\\)</span>` (inline) or
`<div class="arithmatex">\\[…\\]</div>` (display); this hook replaces each by the MathML that
`latex2mathml` (a pure-Python converter from the package index) produces. A formula it cannot
convert fails the build, naming the page.
"""

from __future__ import annotations

import html
import re
from typing import Any

from latex2mathml.converter import convert

_INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)
_DISPLAY = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', re.S)


def _mathml(tex: str, display: bool, page: str) -> str:
    source = html.unescape(tex).strip()
    try:
        out = convert(source, display="block" if display else "inline")
    except Exception as err:  # pragma: no cover - reported as a build failure
        raise RuntimeError(f"{page}: cannot typeset the formula {source!r}: {err}") from err
    return f'<div class="math-display">{out}</div>' if display else out


def on_page_content(content: str, page: Any, **_: Any) -> str:
    """Replace the arithmatex placeholders of one page by MathML."""
    name = getattr(getattr(page, "file", None), "src_path", "?")
    content = _DISPLAY.sub(lambda m: _mathml(m.group(1), True, name), content)
    return _INLINE.sub(lambda m: _mathml(m.group(1), False, name), content)
