"""Turn a post's raw Markdown into `cooked` HTML, roughly as Discourse's pipeline does."""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt

_QUOTE = re.compile(r"\[quote(?:=\"?([^\]\"]*)\"?)?\]\s*(.*?)\s*\[/quote\]", re.DOTALL | re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)

_markdown = MarkdownIt("commonmark", {"html": False, "typographer": True, "breaks": True}).enable(
    ["replacements", "smartquotes", "strikethrough", "table"]
)
# Discourse's French apostrophes are typographic, its quotes stay the usual curly ones.
_markdown.options["quotes"] = "“”‘’"


def cook(raw: str) -> str:
    """The cooked HTML of `raw`: Markdown, typographic quotes, `[quote]` blocks as blockquotes.

    HTML in raw is escaped (Discourse sanitizes it); HTML comments, which Discourse drops, are removed.
    """
    text = _COMMENT.sub("", raw)
    parts: list[str] = []
    position = 0
    for match in _QUOTE.finditer(text):
        parts.append(_render(text[position : match.start()]))
        parts.append(_quote_html(match.group(1), match.group(2)))
        position = match.end()
    parts.append(_render(text[position:]))
    return "\n".join(part for part in parts if part)


def _render(markdown_text: str) -> str:
    return _markdown.render(markdown_text).strip() if markdown_text.strip() else ""


def _quote_html(attributes: str | None, inner: str) -> str:
    username = (attributes or "").split(",")[0].strip()
    title = f'<div class="title">{html.escape(username)}:</div>' if username else ""
    data = f' data-username="{html.escape(username)}"' if username else ""
    return f'<aside class="quote no-group"{data}>{title}<blockquote>{cook(inner)}</blockquote></aside>'
