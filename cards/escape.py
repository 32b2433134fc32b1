"""Escaping of values interpolated into card text.

CDS clients render ``detail`` as GitHub markdown and let raw HTML through, so a diagnosis name such as
``<script>`` or ``**x**`` or a ``|`` inside a table cell must reach the screen as the literal text the
EMR sent. ``summary`` is plain text per the spec, but some clients still drop it into HTML, so it gets
a lighter treatment that keeps it readable.
"""

from __future__ import annotations

import re
import unicodedata

from markupsafe import Markup

# Characters with a meaning in CommonMark/GFM (emphasis, links, tables, headings, lists, code, strike).
_MARKDOWN_SPECIAL = set("\\`*_{}[]()#+-.!|~>=$:")
_HTML_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&#39;"}
_WHITESPACE_RUN = re.compile(r"\s+")


def _clean(value: object) -> str:
    """String form without control characters; newlines collapse so a value cannot break a table row."""
    text = "" if value is None else str(value)
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    return _WHITESPACE_RUN.sub(" ", text).strip()


def escape_markdown(value: object) -> Markup:
    """Escape a value for GFM markdown that may be rendered as raw HTML (safe in text and table cells)."""
    if isinstance(value, Markup):
        return value
    out: list[str] = []
    for ch in _clean(value):
        if ch in _HTML_ENTITIES:
            out.append(_HTML_ENTITIES[ch])
        elif ch in _MARKDOWN_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return Markup("".join(out))


_SUMMARY_SUBSTITUTES = str.maketrans({"<": "＜", ">": "＞"})


def plain_text(value: object) -> str:
    """Plain one-line text for ``summary`` and labels: no control characters, no HTML tags.

    Angle brackets become their full-width forms, which read the same to a Chinese user but cannot
    open a tag in a client that (wrongly) renders the summary as HTML.
    """
    if isinstance(value, Markup):
        value = value.unescape()
    return _clean(value).translate(_SUMMARY_SUBSTITUTES)
