"""MkDocs hook: let long code names in table cells wrap only where a reader expects it.

A table cell such as `test_values.py::test_expected_return_matches_monte_carlo` used to break
every few characters, wherever the column ran out. This hook adds a line-break opportunity
(`<wbr>`) after each `_`, `.`, `::`, `/` and `,` inside `<code>` in table cells, and the
stylesheet forbids breaks elsewhere in code (`docs/stylesheets/math.css`), so names wrap at
their parts or the column widens.
"""

from __future__ import annotations

import re
from typing import Any

_CELL = re.compile(r"(<td[^>]*>)(.*?)(</td>)", re.S)
_CODE = re.compile(r"(<code>)(.*?)(</code>)", re.S)
_BREAK_AFTER = re.compile(r"(::|[_./,])(?=[^<])")


def _code(match: re.Match[str]) -> str:
    return match.group(1) + _BREAK_AFTER.sub(r"\1<wbr>", match.group(2)) + match.group(3)


def _cell(match: re.Match[str]) -> str:
    return match.group(1) + _CODE.sub(_code, match.group(2)) + match.group(3)


def on_page_content(content: str, **_: Any) -> str:
    """Add break opportunities to the code in every table cell of one page."""
    return _CELL.sub(_cell, content)
