"""Wikitext of fiche pages and results pages, edited in the parse tree so people's text stays intact.

Everything here is pure: text in, text out (mwparserfromhell for the parse tree). The wiki gateway
(`wiki.py`) reads and saves; this module decides what the new text is.

Wiki text is French whatever `COMMONS_SYNC_LANGUAGE` says (CONTRACT §1: wiki page names, template and
parameter names stay French), so the few words written here are plain French strings.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence, TypedDict

import mwparserfromhell
from mwparserfromhell.nodes import Comment, Template
from mwparserfromhell.wikicode import Wikicode

from commons_sync.i18n import format_money

TEMPLATE_NAME = "Fiche commun"
CATEGORY = "Communs"
CATEGORY_LINK = "[[Catégorie:Communs]]"

FICHE_PARAMETERS: tuple[str, ...] = (
    "nom",
    "referent",
    "organisations",
    "prochaines_etapes",
    "espace_discussion",
    "statut",
    "objectif",
    "plafond",
    "collecte",
    "promesses",
    "apports",
    "abondement",
    "pourcentage",
    "cofinanceurs",
    "campagne",
    "mise_a_jour",
)
EDITORIAL: tuple[str, ...] = ("referent", "organisations", "prochaines_etapes")

RESULTS_START = "<!-- commons-sync:début -->"
RESULTS_END = "<!-- commons-sync:fin -->"

# Title bytes kept by page_title_for: MediaWiki allows 255, and dedupe_title may add " (NNN)".
TITLE_MAX_BYTES = 240
UNTITLED = "Commun sans titre"


# --- Escaping user text --------------------------------------------------------------------------

_ALWAYS = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "[": "&#91;",
    "]": "&#93;",
    "{": "&#123;",
    "}": "&#125;",
    "|": "&#124;",
    "=": "&#61;",
}
_LINE_START = {"*": "&#42;", "#": "&#35;", ":": "&#58;", ";": "&#59;", "!": "&#33;", "-": "&#45;"}
_REPEATS = {"~": "&#126;", "_": "&#95;", "'": "&#39;"}
# A free URL swallows character references and shows them percent-encoded (`|` as `%7C`); an
# empty `<nowiki/>` ends the URL there, so the rest shows as typed.
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s\[\]\"]*")
_URL_BREAKERS = set("|{}<>")
_NONCHARACTERS = re.compile("[\ufdd0-\ufdef\ufffe\uffff]")
_ENTITY = re.compile(r"&(#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_BR = re.compile(r"<br\s*/?\s*>", re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_NOWIKI = re.compile(r"<nowiki\s*>(.*?)</nowiki\s*>|<nowiki\s*/>", re.DOTALL | re.IGNORECASE)


def normalize_typed(text: str) -> str:
    """What of `text` can survive a trip through the wiki: NFC, `\\n` line ends, no control
    characters, no surrounding whitespace.

    MediaWiki stores text in NFC and drops control characters; a template parameter loses its
    surrounding whitespace. `unescape_wikitext(escape_wikitext(s)) == normalize_typed(s)`.
    """
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "".join(
        c for c in text
        if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cs")
    )
    return _NONCHARACTERS.sub("", text).strip()


def escape_wikitext(text: str) -> str:
    """Text a person typed, as wikitext that shows exactly that and can break nothing around it.

    Choice: character references (`&#124;`, `&lt;`…) rather than `<nowiki>`. A `<nowiki>` block
    can itself be closed by the text (`</nowiki>` typed by someone) and still lets newlines start
    list items or table rows inside the template's table; entities have no such escape hatch, keep
    the value on one line and are what MediaWiki itself emits. Only what the parser could read as
    markup is encoded, so the source stays readable for wiki editors:

    - everywhere: `& < > [ ] { } | =` (links, templates, tags, comments, the template's own `|`/`=`);
    - in runs: every `~`, `_` and `'` followed by the same character (`~~~~` signatures,
      `__NOTOC__` magic words, `''italic''`);
    - at the start of the value: `* # : ; ! -` (lists, definitions, table cells, `----`);
    - newlines become `<br />`, so the value stays on one line of the template call and of the
      infobox's table;
    - inside a URL, `| { } < >` are preceded by `<nowiki/>`, which ends the automatic link
      there (MediaWiki would otherwise show them percent-encoded).

    The text is normalised first (`normalize_typed`): NFC, no control characters, trimmed.
    """
    text = normalize_typed(text)
    in_url = {i for m in _URL.finditer(text) for i in range(m.start(), m.end())}
    out: list[str] = []
    for i, c in enumerate(text):
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if c in _URL_BREAKERS and i in in_url:
            out.append("<nowiki/>" + _ALWAYS[c])
        elif c in _ALWAYS:
            out.append(_ALWAYS[c])
        elif c in _REPEATS and nxt == c:
            out.append(_REPEATS[c])
        elif i == 0 and c in _LINE_START:
            out.append(_LINE_START[c])
        elif c == "\n":
            out.append("<br />")
        else:
            out.append(c)
    return "".join(out)


def unescape_wikitext(wikitext: str) -> str:
    """The text a person meant by a parameter value: the inverse of `escape_wikitext`.

    Used on values people edited on the wiki: comments are dropped, `<br>` is a newline,
    `<nowiki>` is unwrapped and character references are decoded (only complete ones, ending in
    `;`, as MediaWiki reads them).
    """
    text = _COMMENT.sub("", wikitext)
    text = _BR.sub("\n", text)
    text = _NOWIKI.sub(lambda m: m.group(1) or "", text)
    text = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
    return normalize_typed(text)


# --- Page titles ---------------------------------------------------------------------------------

_FORBIDDEN_IN_TITLE = re.compile(r"[#<>\[\]|{}]")
_TITLE_SPACES = re.compile(
    "[\\s_\u00a0\u1680\u180e\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
)
_BIDI_MARKS = re.compile("[\u200e\u200f\u202a-\u202e]")
_PERCENT_ESCAPE = re.compile(r"%(?=[0-9A-Fa-f]{2})")
_TITLE_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")


def _looks_like_prefix(prefix: str) -> bool:
    """Whether the text before a title's first colon could be read as a namespace or interwiki."""
    prefix = prefix.strip().lower()
    return (
        " " not in prefix
        or prefix.startswith("discussion ")
        or prefix.endswith(" talk")
    )


def page_title_for(title: str) -> str:
    """A main-namespace page title for a commons called `title`, as close to it as MediaWiki allows.

    Drops what MediaWiki forbids in titles (`# < > [ ] | { }`, control characters) or would
    misread (`%` before two hex digits, character references, `~~~`, `.`/`..` path segments), turns
    a first colon that would make a namespace or interwiki prefix (`Catégorie:X`, `fr:X`) into
    ` - `, collapses spaces and underscores, capitalises the first letter as the wiki does and
    keeps at most `TITLE_MAX_BYTES` bytes of UTF-8.
    """
    text = normalize_typed(title).replace("\n", " ").replace("\t", " ")
    text = _BIDI_MARKS.sub("", text)
    text = _FORBIDDEN_IN_TITLE.sub(" ", text)
    text = _PERCENT_ESCAPE.sub("% ", text)
    text = _TITLE_ENTITY.sub("& ", text)
    text = re.sub(r"~{3,}", "~~", text)
    text = _TITLE_SPACES.sub(" ", text).strip()
    text = text.lstrip(": ").strip()
    if ":" in text and _looks_like_prefix(text.split(":", 1)[0]):
        head, tail = text.split(":", 1)
        text = f"{head.strip()} - {tail.strip()}".strip(" -") if head.strip() else tail.strip()
    text = _truncate_bytes(text, TITLE_MAX_BYTES)
    segments = text.split("/")
    if any(s in (".", "..") for s in segments):
        text = "/".join("-" if s in (".", "..") else s for s in segments)
    text = _TITLE_SPACES.sub(" ", text).strip()
    if not text:
        return UNTITLED
    return _ucfirst(text)


def dedupe_title(base: str, taken: Iterable[str]) -> str:
    """`base`, or `base (2)`, `base (3)`… whichever is not among the `taken` titles.

    Titles compare as the wiki compares them: first letter case-insensitive, `_` equal to space.
    """
    seen = {_title_key(t) for t in taken}
    if _title_key(base) not in seen:
        return base
    n = 2
    while True:
        candidate = f"{base} ({n})"
        if _title_key(candidate) not in seen:
            return candidate
        n += 1


def _title_key(title: str) -> str:
    return _ucfirst(_TITLE_SPACES.sub(" ", title).strip())


def _ucfirst(text: str) -> str:
    if not text:
        return text
    first = text[0].upper()
    return (first if len(first) == 1 else text[0]) + text[1:]


def _truncate_bytes(text: str, limit: int) -> str:
    if len(text.encode("utf-8")) <= limit:
        return text
    cut = text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
    if " " in cut[len(cut) // 2:]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip()


# --- Fiche pages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FicheUpdate:
    """The fiche's new wikitext and what the wiki told us on the way.

    `from_wiki`: editorial parameters a person changed on the wiki since the service last wrote
    them, unescaped as typed: the service takes them in; they were not overwritten.
    `written`: the source of each parameter of `values` as it now stands on the page (what the
    caller should pass as `last_written` next time).
    """

    text: str
    changed: bool
    from_wiki: dict[str, str] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)


def template_call(values: Mapping[str, str]) -> str:
    """A fresh `{{Fiche commun}}` call with every parameter, one per line, in the contract's order."""
    lines = ["{{" + TEMPLATE_NAME]
    for name in FICHE_PARAMETERS:
        lines.append(f"| {name} = {values.get(name, '')}")
    lines.append("}}")
    return "\n".join(lines)


def new_fiche_text(values: Mapping[str, str]) -> str:
    """The whole wikitext of a new fiche page: the template call, then the category."""
    return template_call(values) + "\n\n" + CATEGORY_LINK + "\n"


def update_fiche(
    wikitext: str, values: Mapping[str, str], last_written: Mapping[str, str] | None
) -> FicheUpdate:
    """Put the service's parameter `values` into the page's template call, touching nothing else.

    Args:
        wikitext: the page as read from the wiki.
        values: parameter → final wikitext (numbers as `1340.5`, user text through
            `escape_wikitext`); only these parameters are written.
        last_written: what the service wrote last time (`FicheUpdate.written`), or None.

    An editorial parameter (`EDITORIAL`) whose meaning on the wiki differs from both
    `last_written` and `values` was changed by a person: it is kept and returned in `from_wiki`.
    With no `last_written`, any non-empty editorial value on the wiki that differs from ours
    counts as a person's. A value is replaced in place: comments and whitespace around it, other
    parameters, the text around the call stay byte for byte. A page without the call gets one at
    the top.
    """
    code = mwparserfromhell.parse(wikitext)
    template = _find_fiche_template(code)
    if template is None:
        if wikitext.strip():
            text = template_call(values) + "\n" + wikitext
        else:
            text = new_fiche_text(values)
        return FicheUpdate(text=text, changed=True, from_wiki={}, written=dict(values))

    from_wiki: dict[str, str] = {}
    written: dict[str, str] = {}
    for name in FICHE_PARAMETERS:
        if name not in values:
            continue
        ours = values[name]
        param = _get_param(template, name)
        on_wiki = _content(str(param.value))[1] if param is not None else None
        wiki_typed = unescape_wikitext(on_wiki or "")
        if name in EDITORIAL and wiki_typed != unescape_wikitext(ours):
            if last_written is not None and name in last_written:
                changed_by_person = wiki_typed != unescape_wikitext(last_written[name])
            else:
                changed_by_person = wiki_typed != ""
            if changed_by_person:
                from_wiki[name] = wiki_typed
                written[name] = on_wiki or ""
                continue
        if param is not None and wiki_typed == unescape_wikitext(ours):
            written[name] = on_wiki or ""
            continue
        if param is None:
            _add_param(template, name, ours)
        else:
            before, _, after = _content(str(param.value))
            param.value = before + ours + after
        written[name] = ours
    text = str(code)
    return FicheUpdate(text=text, changed=text != wikitext, from_wiki=from_wiki, written=written)


def read_fiche(wikitext: str) -> dict[str, str] | None:
    """The template's parameters on a page as typed (unescaped), or None without a call."""
    template = _find_fiche_template(mwparserfromhell.parse(wikitext))
    if template is None:
        return None
    found = {}
    for name in FICHE_PARAMETERS:
        param = _get_param(template, name)
        if param is not None:
            found[name] = unescape_wikitext(_content(str(param.value))[1])
    return found


def _template_key(name: str) -> str:
    name = _COMMENT.sub("", name)
    name = _TITLE_SPACES.sub(" ", name).strip()
    if ":" in name:
        prefix, rest = name.split(":", 1)
        if prefix.strip().lower() in ("modèle", "template"):
            name = rest.strip()
    return _ucfirst(name)


def _find_fiche_template(code: Wikicode) -> Template | None:
    for template in code.filter_templates(recursive=True):
        if _template_key(str(template.name)) == TEMPLATE_NAME:
            return template
    return None


def _get_param(template: Template, name: str):
    """The parameter MediaWiki uses (the last one of that name), or None."""
    found = None
    for param in template.params:
        if param.showkey and _COMMENT.sub("", str(param.name)).strip() == name:
            found = param
    return found


def _content(value: str) -> tuple[str, str, str]:
    """Split a parameter value into (padding before, content, padding after).

    Padding is whitespace and comments; an empty content sits after the leading spaces.
    """
    spans = []  # (start, end) of characters that are content
    pos = 0
    for node in mwparserfromhell.parse(value).nodes:
        src = str(node)
        if not isinstance(node, Comment):
            for m in re.finditer(r"\S+", src):
                spans.append((pos + m.start(), pos + m.end()))
        pos += len(src)
    if not spans:
        lead = len(value) - len(value.lstrip(" \t"))
        return value[:lead], "", value[lead:]
    start, end = spans[0][0], spans[-1][1]
    return value[:start], value[start:end], value[end:]


def _add_param(template: Template, name: str, value: str) -> None:
    """Add a parameter shaped like its neighbours, before the next one in the contract's order."""
    index = FICHE_PARAMETERS.index(name)
    later = FICHE_PARAMETERS[index + 1:]
    before = next((p for p in (_get_param(template, n) for n in later) if p is not None), None)
    if before is None:
        earlier = reversed(FICHE_PARAMETERS[:index])
        after = next((p for p in (_get_param(template, n) for n in earlier) if p is not None), None)
        if after is not None:
            position = next(i for i, p in enumerate(template.params) if p is after) + 1
            if position < len(template.params):
                before = template.params[position]
    if before is not None:
        template.add(name, value, preserve_spacing=True, before=before)
    else:
        template.add(name, value, preserve_spacing=True)


# --- Results pages -------------------------------------------------------------------------------


class ResultLine(TypedDict):
    """One commons on a results page."""

    page: str
    name: str
    amount_cents: int | None
    currency: str
    cofunders: int | None
    partial: bool


def results_line(line: Mapping) -> str:
    """`* [[Page|Nom]] - 1 340 € - 12 cofinanceurs`, `(partiel)` when partly funded; an idea
    (no amount) is `* [[Page|Nom]]`. The name is escaped here; the page is a title."""
    page = line["page"]
    if ":" in page and _looks_like_prefix(page.split(":", 1)[0]):
        page = ":" + page
    text = f"* [[{page}|{escape_wikitext(line['name'])}]]"
    if line.get("amount_cents") is None:
        return text
    text += " - " + format_money(line["amount_cents"], line.get("currency") or "EUR", "fr")
    n = line.get("cofunders")
    if n is not None:
        text += f" - {n} cofinanceur" + ("s" if n > 1 else "")
    if line.get("partial"):
        text += " (partiel)"
    return text


def results_block(sections: Sequence[tuple[str, Sequence[Mapping]]]) -> str:
    """The service's block of a results page: `== Heading ==` then one line per commons, in the
    order given (the caller picks the sections and sorts the lines)."""
    parts = []
    for heading, lines in sections:
        parts.append("\n".join([f"== {heading} =="] + [results_line(line) for line in lines]))
    return "\n\n".join(parts)


def replace_results_block(page_text: str, block: str) -> str:
    """Put `block` between the markers, leaving every byte outside them as it was.

    Without both markers (in order), the block is appended at the end with fresh markers; a lone
    marker is left alone, so no text a person wrote is ever removed.
    """
    wrapped = f"{RESULTS_START}\n{block}\n{RESULTS_END}"
    start, end = _own_block(page_text)
    if start >= 0 and end >= 0:
        return page_text[:start] + wrapped + page_text[end + len(RESULTS_END):]
    if not page_text.strip():
        return wrapped + "\n"
    return page_text.rstrip("\n") + "\n\n" + wrapped + "\n"


def _own_block(page_text: str) -> tuple[int, int]:
    """(start, end) of the service's block: the first end marker with a start marker before it,
    and the start marker nearest to it. A lone start marker a person left earlier on the page is
    not the block's start, or the text between it and the block would be replaced."""
    search_from = 0
    while (end := page_text.find(RESULTS_END, search_from)) >= 0:
        start = page_text.rfind(RESULTS_START, search_from, end)
        if start >= 0:
            return start, end
        search_from = end + len(RESULTS_END)
    return -1, -1
