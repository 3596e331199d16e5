"""HTML mail bodies turned into readable plain text, so staff can triage mail sent as HTML only.

Built on the standard library's `html.parser` (no extra dependency): block elements become line
breaks and blank lines, list items get a dash or their number, table cells are separated by ` | `,
links keep their address in parentheses when it differs from their text, `<pre>` keeps its layout,
and scripts, styles and the document head are dropped. Character references are decoded.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Elements whose content is never shown.
HIDDEN = frozenset({"script", "style", "head", "title", "noscript", "template", "svg", "object"})
# Elements that stand apart from what follows by a blank line.
PARAGRAPHS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "ul", "ol",
                        "dl", "table", "hr", "figure", "address", "fieldset"})
# Elements that start on their own line.
LINES = frozenset({"div", "li", "tr", "dt", "dd", "section", "article", "header", "footer", "main",
                   "nav", "aside", "form", "caption", "center", "body", "html"})
CELLS = frozenset({"td", "th"})
WHITESPACE = re.compile(r"[ \t\n\r\f\v]+")


class _TextBuilder(HTMLParser):
    """Collects text while keeping track of the line breaks the block elements ask for."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.pending_breaks = 0      # newlines owed before the next text
        self.pending_space = False   # a space owed before the next inline text
        self.hidden_depth = 0
        self.pre_depth = 0
        self.lists: list[list] = []  # per open list: [kind, next number]
        self.links: list[tuple[str | None, int]] = []  # href and the position of the link's text
        self.cells_in_row = 0

    # -- output -----------------------------------------------------------------------------

    def _at_line_start(self) -> bool:
        return not self.parts or self.parts[-1].endswith("\n")

    def _break(self, count: int) -> None:
        self.pending_breaks = max(self.pending_breaks, count)
        self.pending_space = False

    def _emit(self, text: str) -> None:
        if not text:
            return
        if self.parts and self.pending_breaks:
            existing = len(self.parts[-1]) - len(self.parts[-1].rstrip("\n"))
            self.parts.append("\n" * max(0, self.pending_breaks - existing))
        elif self.pending_space and not self._at_line_start():
            self.parts.append(" ")
        self.pending_breaks = 0
        self.pending_space = False
        self.parts.append(text)

    # -- parser callbacks -------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs) -> None:
        attributes = dict(attrs)
        if tag in HIDDEN:
            self.hidden_depth += 1
            return
        if self.hidden_depth:
            return
        if tag == "br":
            self._emit_newline()
        elif tag in PARAGRAPHS:
            self._break(2)
        elif tag in LINES:
            self._break(1)
        if tag == "pre":
            self.pre_depth += 1
        elif tag in ("ul", "ol"):
            self.lists.append([tag, 1])
        elif tag == "li":
            self._emit("  " * max(0, len(self.lists) - 1) + self._bullet())
            self.pending_space = False
        elif tag == "tr":
            self.cells_in_row = 0
        elif tag in CELLS:
            if self.cells_in_row:
                self.pending_space = True
                self._emit("|")
                self.pending_space = True
            self.cells_in_row += 1
        elif tag == "a":
            self.links.append((attributes.get("href"), len(self.parts)))
        elif tag == "img" and attributes.get("alt"):
            self._emit(f"[{attributes['alt'].strip()}]")
        elif tag == "hr":
            self._emit("---")
            self._break(2)

    def handle_startendtag(self, tag: str, attrs) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "img", "hr"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN:
            self.hidden_depth = max(0, self.hidden_depth - 1)
            return
        if self.hidden_depth:
            return
        if tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        elif tag == "a" and self.links:
            self._close_link()
        if tag in PARAGRAPHS:
            self._break(2)
        elif tag in LINES:
            self._break(1)

    def handle_data(self, data: str) -> None:
        if self.hidden_depth:
            return
        if self.pre_depth:
            lines = data.split("\n")
            for index, line in enumerate(lines):
                if index:
                    self._emit_newline()
                self._emit(line)
            return
        if data[:1].isspace():
            self.pending_space = True
        words = WHITESPACE.sub(" ", data).strip()
        if words:
            self._emit(words)
        if data[-1:].isspace():
            self.pending_space = True

    # -- helpers ----------------------------------------------------------------------------

    def _emit_newline(self) -> None:
        if self.pending_breaks:
            self._emit("\n")
        else:
            self.parts.append("\n")
        self.pending_space = False

    def _bullet(self) -> str:
        if self.lists and self.lists[-1][0] == "ol":
            number = self.lists[-1][1]
            self.lists[-1][1] += 1
            return f"{number}. "
        return "- "

    def _close_link(self) -> None:
        href, start = self.links.pop()
        if not href:
            return
        shown = "".join(self.parts[start:]).strip()
        target = href[len("mailto:"):] if href.startswith("mailto:") else href
        if not href.startswith(("http://", "https://", "mailto:")) or target in shown:
            return
        if shown:
            self.pending_space = True  # "texte (https://…)"
            self._emit(f"({target})")
        else:
            self._emit(target)

    def text(self) -> str:
        joined = "".join(self.parts)
        lines = [line.rstrip() for line in joined.split("\n")]
        text = "\n".join(lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML document or fragment; never raises on broken markup."""
    builder = _TextBuilder()
    try:
        builder.feed(html)
        builder.close()
    except (AssertionError, ValueError):  # html.parser gives up on some broken declarations
        pass
    return builder.text()
