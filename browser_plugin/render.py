"""Card ``detail`` (GitHub-flavoured markdown) → safe HTML for the panel, rendered on the server.

Two independent layers, so a mistake in one is caught by the other: markdown-it with raw HTML
disabled (any tag a card carries is shown as text) and nh3 (Rust ammonia) keeping only the tags of
text, lists and tables, and links to http(s) only. Inline ``style`` attributes are dropped too, so
the result also passes a strict Content-Security-Policy in the host page. The panel inserts
nothing else as HTML.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote",
        "ul", "ol", "li", "h3", "h4", "h5", "h6",
        "table", "thead", "tbody", "tr", "th", "td", "a",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"colspan"}, "td": {"colspan"}}
MAX_DETAIL_CHARS = 100_000  # cards are short; a runaway detail is cut, not rendered for seconds

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)


@lru_cache(maxsize=1024)
def detail_html(markdown: str) -> str:
    """Sanitised HTML for a card's markdown ``detail`` (cached: many cards share their text)."""
    html = _markdown.render(markdown[:MAX_DETAIL_CHARS])
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()
