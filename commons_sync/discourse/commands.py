"""Forum command lines (`/soutien 50`, `/commun objectif=1340`…) read from a post as its readers see it.

A post is tokenized with markdown-it-py (CommonMark, as Discourse renders with markdown-it) plus a
block rule for Discourse's BBCode `[quote]…[/quote]` and `[code]…[/code]`, written after the one
in Discourse's `discourse-markdown-it` (tag alone on its line, nesting counted, or open and close
tags on one line). A command is a line of a paragraph (also inside a list item) whose text starts
with a command word; a line inside a quote (`> …`, `[quote]`) or code (fenced, indented, inline
backticks, `[code]`) never counts, nor does a heading, a table cell or raw HTML.

Command words are accepted in French and English, in any case, with or without accents
(`/Intéressé`, `/interesse`, `/interested`). Arguments are returned as text: amounts are read by
the engine, not here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock

from commons_sync.discourse.errors import CommandSyntaxError

# Command word (accents removed, case folded) -> canonical French name.
COMMAND_WORDS: dict[str, str] = {
    "soutien": "soutien", "pledge": "soutien",
    "commun": "commun", "commons": "commun",
    "interesse": "interesse", "interessee": "interesse", "interested": "interesse",
    "referent": "referent", "referente": "referent",
    "prochaine-etape": "prochaine-etape", "next-step": "prochaine-etape",
    "annuler": "annuler", "cancel": "annuler",
    "transferer": "transferer", "transfer": "transferer",
    "rappels": "rappels", "reminders": "rappels",
}

# `/commun` argument keys (accents removed, case folded) -> canonical French key.
COMMUN_KEYS: dict[str, str] = {
    "objectif": "objectif", "goal": "objectif",
    "plafond": "plafond", "max": "plafond",
    "campagne": "campagne", "round": "campagne",
}

SWITCH_WORDS: dict[str, bool] = {
    "oui": True, "on": True, "yes": True, "active": True,
    "non": False, "off": False, "no": False, "desactive": False,
}

# Inline tokens that only carry formatting: a command line may be wrapped in them (`**/soutien 50**`).
_MARKUP = {"em_open", "em_close", "strong_open", "strong_close", "s_open", "s_close",
           "link_open", "link_close"}
_QUOTE_OPEN = {"blockquote_open", "bbcode_quote_open"}
_QUOTE_CLOSE = {"blockquote_close", "bbcode_quote_close"}
_BBCODE_BLOCK_TAGS = {"quote", "code"}


@dataclass(frozen=True)
class ForumCommand:
    """One command line of a post: `name` canonical French, `argument` the rest of the line as text."""

    name: str
    argument: str
    line: str


def extract_commands(raw: str) -> list[ForumCommand]:
    """The command lines of a post's raw Markdown, in the order they appear.

    Several lines of the same command are all returned: the caller decides (a post with two
    `/soutien` lines is refused).
    """
    commands: list[ForumCommand] = []
    tokens = _parser().parse(raw or "")
    quote_depth = 0
    for index, token in enumerate(tokens):
        if token.type in _QUOTE_OPEN:
            quote_depth += 1
        elif token.type in _QUOTE_CLOSE:
            quote_depth -= 1
        elif (token.type == "inline" and quote_depth == 0 and index > 0
              and tokens[index - 1].type == "paragraph_open"):
            for line in _paragraph_lines(token.children or []):
                command = _command_of_line(line)
                if command is not None:
                    commands.append(command)
    return commands


def has_command(raw: str, name: str) -> bool:
    """Whether the post holds at least one command line `name` (canonical French name)."""
    return any(command.name == name for command in extract_commands(raw))


def canonical_word(word: str) -> str:
    """`word` case-folded and without accents, as command words and keys are compared."""
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def parse_commun_arguments(argument: str, *, require_goal: bool = True) -> dict[str, str]:
    """`objectif=1340 plafond=1500 campagne=x` (or `goal= max= round=`) as a dict with French keys.

    Values stay text (amounts are read by the engine); a value runs until the next `key=`, so
    `objectif=1 340 €` keeps its spaces.

    Raises:
        CommandSyntaxError: an unknown or repeated key, text that is not `key=value`, an empty
            value, or (with `require_goal`) no `objectif`.
    """
    text = argument.strip()
    matches = list(_KEY_VALUE.finditer(text))
    if not matches or text[:matches[0].start()].strip():
        if not text and not require_goal:
            return {}
        raise CommandSyntaxError(
            "La commande /commun attend des paramètres clé=valeur, par exemple "
            "« /commun objectif=1340 plafond=1500 campagne=2026 » (reçu : « {text} »).",
            text=text)
    result: dict[str, str] = {}
    for position, match in enumerate(matches):
        end = matches[position + 1].start() if position + 1 < len(matches) else len(text)
        key_typed = match.group("key")
        key = COMMUN_KEYS.get(canonical_word(key_typed))
        if key is None:
            raise CommandSyntaxError(
                "Paramètre inconnu « {key} » : les paramètres de /commun sont objectif, plafond "
                "et campagne (en anglais : goal, max, round).", key=key_typed)
        if key in result:
            raise CommandSyntaxError("Le paramètre « {key} » est donné deux fois.", key=key_typed)
        value = text[match.end():end].strip()
        if not value:
            raise CommandSyntaxError("Le paramètre « {key} » n'a pas de valeur.", key=key_typed)
        result[key] = value
    if require_goal and "objectif" not in result:
        raise CommandSyntaxError(
            "La commande /commun demande un objectif, par exemple « /commun objectif=1340 ».")
    return result


def parse_switch(argument: str) -> bool:
    """`oui`/`on`/`yes` → True, `non`/`off`/`no` → False (any case, accents optional).

    Raises:
        CommandSyntaxError: any other text.
    """
    word = canonical_word(argument.strip())
    if word not in SWITCH_WORDS:
        raise CommandSyntaxError(
            "Réponse attendue : « oui » ou « non » (en anglais : « yes » ou « no »), reçu « {text} ».",
            text=argument.strip())
    return SWITCH_WORDS[word]


def parse_referent(argument: str) -> str:
    """The forum username named by `/referent @username` (the `@` is optional).

    Raises:
        CommandSyntaxError: no username, or more than one word.
    """
    text = argument.strip()
    username = text[1:] if text.startswith("@") else text
    if not _USERNAME.fullmatch(username):
        raise CommandSyntaxError(
            "La commande /referent attend un nom d'utilisateur du forum, par exemple "
            "« /referent @margaux.lefevre » (reçu « {text} »).", text=text)
    return username


# --- Markdown lines ---------------------------------------------------------------------------

_KEY_VALUE = re.compile(r"(?:^|(?<=\s))(?P<key>[^\s=]+)=")
_USERNAME = re.compile(r"[\w.-]+")
_COMMAND_WORD = re.compile(r"/(?P<word>[^\s/]+)")


@dataclass
class _Line:
    text: str = ""
    starts_with_text: bool | None = None  # None until the first visible piece is seen


def _paragraph_lines(children: list) -> list[_Line]:
    """The visible lines of a paragraph's inline tokens, each noting whether it opens with plain text."""
    lines = [_Line()]
    for child in children:
        line = lines[-1]
        if child.type in ("softbreak", "hardbreak"):
            lines.append(_Line())
        elif child.type in _MARKUP:
            continue
        elif child.type == "text":
            if line.starts_with_text is None and child.content.strip():
                line.starts_with_text = True
            line.text += child.content
        elif child.type == "code_inline":
            if line.starts_with_text is None:
                line.starts_with_text = False
            line.text += f"`{child.content}`"
        else:  # html_inline, image, anything else: not text a command can start with
            if line.starts_with_text is None:
                line.starts_with_text = False
    return lines


def _command_of_line(line: _Line) -> ForumCommand | None:
    if not line.starts_with_text:
        return None
    text = line.text.strip()
    match = _COMMAND_WORD.match(text)
    if match is None:
        return None
    name = COMMAND_WORDS.get(canonical_word(match.group("word")))
    rest = text[match.end():]
    if name is None or (rest and not rest[0].isspace()):
        return None
    return ForumCommand(name=name, argument=rest.strip(), line=text)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    md.block.ruler.after("fence", "bbcode_block", _bbcode_block,
                         {"alt": ["paragraph", "reference", "blockquote", "list"]})
    return md


# --- Discourse BBCode blocks ------------------------------------------------------------------


@dataclass(frozen=True)
class _Tag:
    name: str
    length: int
    closing: bool


def _read_tag(src: str, start: int, end: int, *, alone: bool) -> _Tag | None:
    """The BBCode tag at `src[start]` (`[quote=…]`, `[/quote]`); with `alone`, only spaces may follow."""
    position = start + 1
    closing = position < end and src[position] == "/"
    if closing:
        position += 1
    name_start = position
    while position < end and src[position].isascii() and src[position].isalpha():
        position += 1
    name = src[name_start:position].lower()
    if not name:
        return None
    if closing:
        if position >= end or src[position] != "]":
            return None
    else:
        position = src.find("]", position, end)
        if position < 0:
            return None
    length = position + 1 - start
    if alone and src[start + length:end].strip():
        return None
    return _Tag(name, length, closing)


def _inline_close(src: str, tag: _Tag, start: int, end: int) -> int | None:
    """Where `[/tag]` starts when it ends the opening line (`[quote]text[/quote]`), else None."""
    stripped_end = len(src[:end].rstrip())
    closer = f"[/{tag.name}]"
    candidate = stripped_end - len(closer)
    if candidate >= start and src[candidate:stripped_end].lower() == closer:
        return candidate
    return None


def _block_close(state: StateBlock, tag: _Tag, first_line: int, end_line: int) -> int | None:
    """The line of the `[/tag]` that closes `tag`, counting nested `[tag]` lines, or None."""
    nesting = 0
    for line in range(first_line, end_line):
        start = state.bMarks[line] + state.tShift[line]
        end = state.eMarks[line]
        if start < end and state.sCount[line] < state.blkIndent:
            return None
        if state.src[start:start + 1] != "[" or state.sCount[line] - state.blkIndent >= 4:
            continue
        found = _read_tag(state.src, start, end, alone=True)
        if found is None or found.name != tag.name:
            continue
        if found.closing:
            if nesting == 0:
                return line
            nesting -= 1
        else:
            nesting += 1
    return None


def _bbcode_block(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    start = state.bMarks[start_line] + state.tShift[start_line]
    end = state.eMarks[start_line]
    if state.src[start:start + 1] != "[" or state.sCount[start_line] - state.blkIndent >= 4:
        return False
    tag = _read_tag(state.src, start, end, alone=False)
    if tag is None or tag.closing or tag.name not in _BBCODE_BLOCK_TAGS:
        return False
    if silent:
        return True

    content_start = start + tag.length
    inline_close = _inline_close(state.src, tag, content_start, end)
    close_line = start_line
    if inline_close is None:
        if state.src[content_start:end].strip():
            return False
        found = _block_close(state, tag, start_line + 1, end_line)
        if found is None:
            return False
        close_line = found

    old_parent, old_line_max = state.parentType, state.lineMax
    state.lineMax = close_line
    if tag.name == "code":
        token = state.push("fence", "code", 0)
        token.map = [start_line, close_line + 1]
        if inline_close is not None:
            token.content = state.src[content_start:inline_close]
        else:
            token.content = state.getLines(start_line + 1, close_line, 0, True)
    else:
        token = state.push("bbcode_quote_open", "aside", 1)
        token.map = [start_line, close_line + 1]
        if inline_close is not None:
            state.push("paragraph_open", "p", 1).map = [start_line, start_line + 1]
            inline = state.push("inline", "", 0)
            inline.content = state.src[content_start:inline_close]
            inline.map = [start_line, start_line + 1]
            inline.children = []
            state.push("paragraph_close", "p", -1)
        else:
            state.md.block.tokenize(state, start_line + 1, close_line)
        state.push("bbcode_quote_close", "aside", -1)
    state.parentType, state.lineMax = old_parent, old_line_max
    state.line = close_line + 1
    return True
