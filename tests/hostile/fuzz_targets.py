"""Fuzz targets shared by `tests/hostile/test_fuzz.py` (a few hundred cases) and `bench/fuzz.py`.

Why: whatever a forum, a wiki editor or a mail sender sends, the service must answer without a
`5xx`, never crash, and never change the ledger because of an input it refuses. Each target is
one function `run_<name>(cases) -> Outcome`: it builds its environment (a SQLite service, the
Discourse double on loopback when the target needs the forum), lets hypothesis generate `cases`
inputs, checks the properties on each one and reports the number of cases run and the failure
(hypothesis' shrunk example) if any.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import random
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_FIXTURES = ROOT / "tests" / "discourse" / "fixtures"
MAIL_FIXTURES = ROOT / "tests" / "mail" / "fixtures"
WEBHOOK_SECRET = "hostile-webhook-secret-0123"
COMMONS_TOPIC = 318  # the recorded deliveries' commons topic
BOT = "cofinancement"
ANSWERS = {200, 202, 400, 401, 413}


@dataclass
class Outcome:
    """What one target did: cases run, the failures found (shrunk), and the time it took."""

    name: str
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    notes: dict = field(default_factory=dict)


def _settings(cases: int, seed: int | None):
    return settings(max_examples=cases, deadline=None, database=None, derandomize=seed is not None,
                    phases=(Phase.generate, Phase.shrink), print_blob=False,
                    suppress_health_check=list(HealthCheck))


def _run(name: str, cases: int, seed: int | None, strategy, check, notes: dict | None = None) -> Outcome:
    """Run `check` on `cases` examples of `strategy`; a failure is recorded, not raised."""
    outcome = Outcome(name, notes=notes if notes is not None else {})

    def counted(example) -> None:
        outcome.cases += 1
        check(example)

    test = _settings(cases, seed)(given(strategy)(counted))
    started = time.perf_counter()
    try:
        if seed is not None:
            random.seed(seed)
        test()
    except Exception as error:  # noqa: BLE001 - the failure is the result
        outcome.failures.append("".join(traceback.format_exception_only(type(error), error)).strip()
                                + "\n" + "".join(traceback.format_tb(error.__traceback__)[-3:]))
    outcome.seconds = time.perf_counter() - started
    return outcome


# --- amounts ----------------------------------------------------------------------------------------

AMOUNT_ALPHABET = "0123456789  ,.€$£-+eurEURsoCHF\u00a0\u202f\u2009٥𝟓"


def amount_texts():
    digits = st.integers(1, 6000).map(lambda n: "9" * n)
    return st.one_of(
        st.text(max_size=40),
        st.text(alphabet=AMOUNT_ALPHABET, max_size=24),
        digits,
        st.tuples(digits, st.sampled_from([",", ".", ",5", " €", ""]), digits).map("".join),
        st.builds(lambda n, sep: sep.join([str(n)] + ["000"] * 3), st.integers(1, 999),
                  st.sampled_from([" ", "\u00a0", "\u202f", ",", "."])),
    )


def run_amounts(cases: int, seed: int | None = None) -> Outcome:
    """`parse_amount`: cents in (0, MAX_CENTS] or `AmountError`, nothing else; what
    `format_money` prints reads back to the same cents."""
    from commons_sync.engine.errors import AmountError
    from commons_sync.engine.money import MAX_CENTS, parse_amount
    from commons_sync.i18n import format_money

    def check(example) -> None:
        kind, value = example
        if kind == "text":
            try:
                cents = parse_amount(value)
            except AmountError:
                return
            assert isinstance(cents, int) and 0 < cents <= MAX_CENTS, (value, cents)
        else:
            for shown in (format_money(value, "EUR", "fr"), f"{value // 100},{value % 100:02d}",
                          f"{value // 100}.{value % 100:02d} €"):
                assert parse_amount(shown) == value, (shown, value)

    strategy = st.one_of(st.tuples(st.just("text"), amount_texts()),
                         st.tuples(st.just("money"), st.integers(1, 10**13)))
    return _run("amounts", cases, seed, strategy, check)


# --- pledge texts through the service ----------------------------------------------------------------

_INERT = st.text(alphabet="abcdefghijklmnopqrstuvwxyzéèàçABCDEFG0123456789 ,;:!?'()", min_size=1,
                 max_size=40).filter(lambda s: s.strip() and not s.lstrip()[0].isdigit())
_AMOUNT = st.one_of(st.text(alphabet="0123456789 ,.€\u00a0\u202f-eurEUR", min_size=1, max_size=14),
                    st.integers(1, 2000).map(str), st.integers(1, 6000).map(lambda n: "7" * n))
_WORD = st.sampled_from(["soutien", "pledge", "Soutien", "PLEDGE"])


def _segment():
    """One paragraph of a post and whether it is a pledge line that counts (kind, text, amount)."""
    line = st.tuples(_WORD, _AMOUNT).map(lambda p: (f"/{p[0]} {p[1]}", p[1]))
    return st.one_of(
        st.tuples(st.just("filler"), _INERT, st.none()),
        line.map(lambda lp: ("plain", lp[0], lp[1])),
        line.map(lambda lp: ("quoted", "> " + lp[0], lp[1])),
        line.map(lambda lp: ("bbquote", "[quote]\n" + lp[0] + "\n[/quote]", lp[1])),
        line.map(lambda lp: ("fenced", "```\n" + lp[0] + "\n```", lp[1])),
        line.map(lambda lp: ("indented", "    " + lp[0], lp[1])),
        line.map(lambda lp: ("inline", "voir `" + lp[0] + "` ici", lp[1])),
    )


def pledge_posts():
    structured = st.lists(_segment(), max_size=5).map(
        lambda segments: ("structured", "\n\n".join(s[1] for s in segments),
                          [s[2] for s in segments if s[0] == "plain"]))
    free = st.text(max_size=300).map(lambda text: ("free", text, None))
    mixed = st.tuples(st.text(max_size=80), _AMOUNT).map(
        lambda p: ("free", p[0] + "\n/soutien " + p[1] + "\n" + p[0], None))
    return st.tuples(st.one_of(structured, free, mixed), st.sampled_from(["alice", "zoe"]),
                     st.integers(0, 9))


@contextlib.contextmanager
def forum_service(tmp: Path, *, allocation_cents: int = 10**14):
    """A SQLite service with one open round (group `cofinanceurs`), a commons on topic 318 with a
    goal too high to reach, and the Discourse double on loopback (alice a member, zoe not, claire
    staff) behind the real `DiscourseClient`."""
    from datetime import timedelta

    from commons_sync.cli_forum import build_forum_client
    from commons_sync.config import load_settings
    from commons_sync.devtools.discourse_double import DoubleConfig, RunningDouble
    from commons_sync.service import handlers
    from commons_sync.service.forum import DeliveryApplier, ForumSettings
    from commons_sync.service.handlers import CommonsSpec, RoundSpec, Service
    from commons_sync.storage.database import make_engine, upgrade
    from tests.forum.harness import OffsetClock

    url = f"sqlite:///{tmp / 'fuzz.db'}"
    engine = make_engine(url)
    upgrade(engine)
    svc = Service(engine, OffsetClock())
    handlers.create_round(svc, RoundSpec(slug="printemps", name="Printemps", allocation_cents=allocation_cents,
                                         group="cofinanceurs", closes_at=svc.clock() + timedelta(days=30)))
    handlers.open_commons(svc, CommonsSpec(round_slug="printemps", title="Découpeuse laser",
                                           goal_cents=10**13, topic_id=COMMONS_TOPIC))
    with RunningDouble(DoubleConfig(api_rpm=100_000, api_username=BOT)) as forum:
        forum.admin.create_group("cofinanceurs")
        forum.admin.create_user("alice", name="Alice", groups=["cofinanceurs"])
        forum.admin.create_user("zoe", name="Zoé")
        forum.admin.create_user("claire", name="Claire", moderator=True)
        config = load_settings(database_url=url, discourse_url=forum.url, discourse_api_key=forum.api_key,
                               discourse_api_username=BOT, discourse_webhook_secret=WEBHOOK_SECRET,
                               discourse_max_rpm=100_000, secret_key="hostile-secret-key-" + "k" * 20)
        client = build_forum_client(config, svc)
        applier = DeliveryApplier(svc, client, ForumSettings.from_settings(config))
        try:
            yield svc, config, applier, forum
        finally:
            client.close()
            engine.dispose()


def ledger_rows(svc) -> int:
    from sqlalchemy import func, select

    from commons_sync.storage import tables as tb

    return svc.run(lambda uow: uow.repo.conn.execute(
        select(func.count()).select_from(tb.ledger_entries)).scalar())


def run_pledge_texts(cases: int, seed: int | None = None, verify_every: int = 50) -> Outcome:
    """Post texts through `extract_commands`, `parse_amount` and the worker's `apply_snapshot`:
    only unquoted, uncoded pledge lines count; a post whose pledge is invalid (several lines, a
    malformed amount) leaves the ledger as it was; the ledger always verifies."""
    from commons_sync.discourse.commands import extract_commands
    from commons_sync.discourse.events import PostSnapshot
    from commons_sync.engine.errors import AmountError
    from commons_sync.engine.money import parse_amount
    from commons_sync.service import handlers

    with tempfile.TemporaryDirectory() as tmp, forum_service(Path(tmp)) as (svc, _config, applier, _forum):
        posts: list[tuple[int, str, int]] = []  # (post_id, username, version) already sent
        counter = {"n": 0, "accepted_changes": 0}

        def check(example) -> None:
            (kind, raw, expected), username, edit_choice = example
            commands = extract_commands(raw)
            pledges = [c for c in commands if c.name == "soutien"]
            if kind == "structured":
                assert [c.argument for c in pledges] == [a.strip() for a in expected], (raw, pledges)
            valid = False
            if len(pledges) == 1:
                try:
                    parse_amount(pledges[0].argument)
                    valid = True
                except AmountError:
                    pass
            if posts and edit_choice < 3:
                post_id, username, version = posts[edit_choice % len(posts)]
                version += 1
            else:
                post_id, version = 100_000 + counter["n"], 1
            counter["n"] += 1
            known = handlers_known(svc, post_id)
            before = ledger_rows(svc)
            applier.apply_snapshot(PostSnapshot(
                post_id=post_id, topic_id=COMMONS_TOPIC, post_number=2 + counter["n"], username=username,
                user_id=None, name=None, version=version, raw=raw, cooked=None, deleted_at=None,
                user_deleted=False, post_type=1, topic_archetype="regular", category_id=None,
                reply_to_post_number=1, staff=False, admin=False, moderator=False, created_at=None,
                updated_at=None))
            posts.append((post_id, username, version))
            after = ledger_rows(svc)
            withdrawal = not pledges and known
            if not (valid or withdrawal):
                assert after == before, ("ledger changed by an invalid pledge", raw)
            counter["accepted_changes"] += after != before
            if counter["n"] % verify_every == 0:
                assert handlers.verify_ledger(svc) == []

        outcome = _run("pledge_texts", cases, seed, pledge_posts(), check)
        problems = handlers.verify_ledger(svc)
        if problems:
            outcome.failures.append(f"verify_ledger after the run: {problems[:3]}")
        outcome.notes["ledger_changes"] = counter["accepted_changes"]
        return outcome


def handlers_known(svc, post_id: int) -> bool:
    from sqlalchemy import select

    from commons_sync.storage import tables as tb

    return svc.run(lambda uow: uow.repo.conn.execute(
        select(tb.pledges.c.id).where(tb.pledges.c.post_id == post_id)).first() is not None)


# --- webhook bodies and headers --------------------------------------------------------------------


def recorded_deliveries() -> dict[str, tuple[dict, bytes]]:
    found = {}
    for path in sorted(WEBHOOK_FIXTURES.glob("*.json")):
        if path.name.endswith(".headers.json"):
            continue
        headers = json.loads(path.with_name(path.stem + ".headers.json").read_text(encoding="utf-8"))
        headers = {k: v for k, v in headers.items() if k not in ("Host", "Content-Length", "Connection")}
        found[path.stem] = (headers, path.read_bytes())
    return found


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# Signature modes: which are valid (the answer is anything but 401) and which must be refused.
VALID_SIGNATURES = ("valid", "upper", "padded")
FORGED_SIGNATURES = ("missing", "empty", "truncated", "sha1", "other_secret", "random", "bare_hex",
                     "sha512", "doubled")


def signature_for(mode: str, body: bytes, noise: str) -> str | None:
    good = sign(body)
    return {
        "valid": good, "upper": "sha256=" + good[7:].upper(), "padded": f"  {good} ",
        "missing": None, "empty": "", "truncated": good[:-1 - len(noise) % 60],
        "sha1": "sha1=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha1).hexdigest(),
        "sha512": "sha512=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha512).hexdigest(),
        "other_secret": sign(body, "another-secret-" + noise),
        "random": noise, "bare_hex": good[7:], "doubled": good + good[7:],
    }[mode]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10)
_HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255,
                                              blacklist_characters="\x7f"), max_size=30)


@st.composite
def webhook_requests(draw, recorded: dict):
    name = draw(st.sampled_from(sorted(recorded)))
    headers, body = recorded[name]
    headers = dict(headers)
    how = draw(st.sampled_from(["as_is", "field", "raw", "bytes", "truncate", "json"]))
    if how in ("field", "raw"):
        payload = json.loads(body)
        top = next(iter(payload))
        target = payload[top] if isinstance(payload[top], dict) else payload
        if how == "raw":
            kind, raw, _ = draw(pledge_posts())[0]
            target["raw"] = raw
            target["version"] = draw(st.integers(-3, 2**64))
        else:
            key = draw(st.sampled_from(sorted(target) + ["id", "topic_id", "username", "version",
                                                         "post_type", "deleted_at"]))
            target[key] = draw(_JSON)
        body = json.dumps(payload, ensure_ascii=draw(st.booleans())).encode()
    elif how == "bytes":
        body = draw(st.binary(max_size=300))
    elif how == "truncate":
        body = body[:draw(st.integers(0, len(body)))]
    elif how == "json":
        body = json.dumps(draw(_JSON)).encode()
    for header in ("X-Discourse-Event", "X-Discourse-Event-Type", "X-Discourse-Event-Id",
                   "X-Discourse-Instance", "Content-Type"):
        change = draw(st.sampled_from(["keep"] * 6 + ["drop", "text", "number"]))
        if change == "drop":
            headers.pop(header, None)
        elif change == "text":
            headers[header] = draw(_HEADER_TEXT)
        elif change == "number":
            headers[header] = str(draw(st.integers(-2**70, 2**70)))
    mode = draw(st.sampled_from(VALID_SIGNATURES * 3 + FORGED_SIGNATURES))
    signature = signature_for(mode, body, draw(_HEADER_TEXT))
    headers.pop("X-Discourse-Event-Signature", None)
    if signature is not None:
        headers["X-Discourse-Event-Signature"] = signature
    return name, how, mode, headers, body


def deliveries(svc) -> int:
    from sqlalchemy import func, select

    from commons_sync.storage import forum_tables as ft

    return svc.run(lambda uow: uow.repo.conn.execute(
        select(func.count()).select_from(ft.forum_deliveries)).scalar())


def _apply_stored(svc, applier, event_id: int) -> None:
    from sqlalchemy import select

    from commons_sync.discourse.errors import ApiError
    from commons_sync.storage import forum_tables as ft

    d = ft.forum_deliveries
    row = svc.run(lambda uow: uow.repo.conn.execute(
        select(d.c.id, d.c.event_id, d.c.event_type, d.c.event, d.c.instance, d.c.body)
        .where(d.c.event_id == event_id)).first())
    if row is None:
        return
    with contextlib.suppress(ApiError):  # the forum could not help: the delivery waits, as designed
        applier.apply_row(row)


def _webhook_target(name: str, cases: int, seed: int | None, send, verify_every: int) -> Outcome:
    from commons_sync.service import handlers
    from commons_sync.web.app import create_app

    recorded = recorded_deliveries()
    statuses: dict[int, int] = {}
    with tempfile.TemporaryDirectory() as tmp, forum_service(Path(tmp)) as (svc, config, applier, _forum):
        app = create_app(config, svc)
        with send(app) as post:
            counter = {"n": 0}

            def check(example) -> None:
                _name, _how, mode, headers, body = example
                stored_before, ledger_before = deliveries(svc), ledger_rows(svc)
                status, text = post(headers, body)
                statuses[status] = statuses.get(status, 0) + 1
                assert status in ANSWERS, (status, text[:300])
                stored_after = deliveries(svc)
                if mode in FORGED_SIGNATURES:
                    assert status == 401, (mode, headers.get("X-Discourse-Event-Signature"), status)
                else:
                    assert status != 401, (mode, status)
                if status != 202:
                    assert stored_after == stored_before, ("stored though answered", status)
                assert ledger_rows(svc) == ledger_before  # receiving never touches the ledger
                if status == 202 and stored_after > stored_before:
                    _apply_stored(svc, applier, int(headers["X-Discourse-Event-Id"]))
                counter["n"] += 1
                if counter["n"] % verify_every == 0:
                    assert handlers.verify_ledger(svc) == []

            outcome = _run(name, cases, seed, webhook_requests(recorded), check, {"statuses": statuses})
        problems = handlers.verify_ledger(svc)
        if problems:
            outcome.failures.append(f"verify_ledger after the run: {problems[:3]}")
        return outcome


@contextlib.contextmanager
def _test_client(app):
    client = app.test_client()

    def post(headers, body):
        answer = client.post("/webhooks/discourse", data=body, headers=headers)
        return answer.status_code, answer.get_data(as_text=True)

    yield post


@contextlib.contextmanager
def _over_http(app):
    """POST through a real socket with `http.client`, which sends header values as given (requests
    refuses some of the odd ones a fuzzer makes, such as leading spaces)."""
    import http.client

    from commons_sync.devtools.served import ServedApp

    served = ServedApp(app)
    port = served.server.server_port
    try:
        def post(headers, body):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.putrequest("POST", "/webhooks/discourse", skip_accept_encoding=True)
                for key, value in headers.items():
                    connection.putheader(key, value.encode("latin-1"))
                connection.putheader("Content-Length", str(len(body)))
                connection.endheaders(body)
                answer = connection.getresponse()
                return answer.status, answer.read().decode("utf-8", "replace")
            finally:
                connection.close()

        yield post
    finally:
        served.stop()


def run_webhook(cases: int, seed: int | None = None, verify_every: int = 100) -> Outcome:
    """Fuzzed deliveries (recorded ones mutated: fields, raw text, bytes, truncation; headers;
    nine kinds of forged signature) through the Flask app: only the documented answers; a forged
    signature is `401`; nothing stored unless `202`; stored deliveries are applied by the worker's
    code and the ledger verifies."""
    return _webhook_target("webhook", cases, seed, _test_client, verify_every)


def run_webhook_http(cases: int, seed: int | None = None, verify_every: int = 100) -> Outcome:
    """The same deliveries over real HTTP on loopback (werkzeug's server), a smaller sample."""
    return _webhook_target("webhook_http", cases, seed, _over_http, verify_every)


# --- wiki text ------------------------------------------------------------------------------------

_WIKI_BITS = st.sampled_from([
    "{{", "}}", "[[", "]]", "|", "=", "<!--", "-->", "<nowiki>", "</nowiki>", "<br>", "&#124;", "&lt;",
    "~~~~", "__NOTOC__", "''", "\n", "\n* ", "{{Fiche commun", "{{fiche_commun|", "{{Modèle:Fiche commun\n",
    "| nom = ", "|referent=", "| statut = ", "{{{1}}}", "<ref>", "</ref>", "[https://ex.org a|b]",
    "https://ex.org/a?b=|c", "{|", "|}", "\r\n", "\u200e", "é", "\x00", "\ud7ff", "=", " ",
    "<!-- commons-sync:début -->", "<!-- commons-sync:fin -->",
])
wiki_texts = st.one_of(st.text(max_size=200), st.lists(st.one_of(_WIKI_BITS, st.text(max_size=8)),
                                                         max_size=30).map("".join))


def as_stored(text: str) -> str:
    """A page text as MediaWiki stores it: `\n` line ends, C0 controls other than tab and newline
    replaced (UtfNormal's cleanUp), so a page never holds a NUL."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join("\ufffd" if ord(c) < 32 and c not in "\t\n" else c for c in text)


wiki_pages = wiki_texts.map(as_stored)


def own_block(page: str, start_marker: str, end_marker: str) -> tuple[int, int]:
    """The contract's block: an end marker and the nearest start marker before it (a lone marker
    a person left is never the block), or (-1, -1)."""
    starts = [i for i in range(len(page)) if page.startswith(start_marker, i)]
    previous_end = 0
    for end in (i for i in range(len(page)) if page.startswith(end_marker, i)):
        before = [i for i in starts if previous_end <= i and i + len(start_marker) <= end]
        if before:
            return before[-1], end
        previous_end = end + len(end_marker)
    return -1, -1


def run_wiki(cases: int, seed: int | None = None) -> Outcome:
    """`escape_wikitext` round trip and containment; `update_fiche` on any page keeps its promise
    (our values read back, a second run changes nothing); `replace_results_block` keeps every
    byte outside the markers."""
    import mwparserfromhell

    from commons_sync.mediawiki.fiche import (
        EDITORIAL,
        RESULTS_END,
        RESULTS_START,
        TEMPLATE_NAME,
        escape_wikitext,
        normalize_typed,
        read_fiche,
        replace_results_block,
        unescape_wikitext,
        update_fiche,
    )

    def check(example) -> None:
        typed, page, other = example
        escaped = escape_wikitext(typed)
        assert unescape_wikitext(escaped) == normalize_typed(typed), (typed, escaped)
        call = mwparserfromhell.parse("{{" + TEMPLATE_NAME + " | nom = " + escaped + " }}")
        [template] = call.filter_templates(recursive=True)
        assert [str(p.name).strip() for p in template.params] == ["nom"], (typed, escaped)
        assert str(template.get("nom").value).strip() == escaped
        for marker in ("{{", "}}", "[[", "]]", "|", "~~~", "\n", "<ref", "<!--"):
            assert marker not in escaped.replace("<nowiki/>", "").replace("<br />", ""), (marker, escaped)
        values = {"nom": escaped, "referent": escape_wikitext(other), "collecte": "1340.5",
                  "pourcentage": "42", "statut": "en financement"}
        first = update_fiche(page, values, None)
        read = read_fiche(first.text)
        assert read is not None, (page, first.text)
        for name, value in values.items():
            if name not in first.from_wiki:
                assert read[name] == unescape_wikitext(value), (name, page, first.text)
        second = update_fiche(first.text, values, first.written)
        assert not second.changed and second.text == first.text, (page, first.text, second.text)
        if first.from_wiki:
            assert set(first.from_wiki) <= set(EDITORIAL)
        block = "== Financé ==\n* [[Page|" + escaped + "]]"
        replaced = replace_results_block(page, block)
        start, end = own_block(page, RESULTS_START, RESULTS_END)
        if start >= 0:
            assert replaced.startswith(page[:start]) and replaced.endswith(page[end + len(RESULTS_END):])
        else:
            assert replaced.startswith(page.rstrip("\n")) or not page.strip()
        assert replaced.count(RESULTS_START) >= page.count(RESULTS_START)  # no marker a person wrote is lost
        assert replace_results_block(replaced, block) == replaced

    strategy = st.tuples(st.one_of(st.text(max_size=80), wiki_texts), wiki_pages, st.text(max_size=30))
    return _run("wiki", cases, seed, strategy, check)


# --- MIME messages --------------------------------------------------------------------------------

_MIME_HEADERS = st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=\"b\"\r\n", b"Content-Type: multipart/alternative\r\n",
    b"Content-Type: text/plain; charset=\"x-unknown-42\"\r\n", b"Content-Type: text/html; charset=utf-7\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Subject: =?utf-8?b?w6k=?= =?iso-8859-1?q?=E9t=E9?= =?bogus?x?yy?=\r\n",
    b"From: =?utf-8?q?Ren=C3=A9e?= <renee@cretes.example>\r\n", b"From: <>\r\n", b"From: a@b@c\r\n",
    b"From: \"Evil\r\n Bcc: victim@example.org\" <e@x.org>\r\n", b"Reply-To: \"x\" <@>\r\n",
    b"Message-ID: <<<>>>\r\n", b"Date: Mon, 99 Foo 99999 99:99:99 +9999\r\n", b"Auto-Submitted: auto-replied\r\n",
    b"Content-Disposition: attachment; filename*=utf-8''%E9%00../../etc/passwd\r\n",
    b"Content-Type: message/rfc822\r\n", b"\r\n--b\r\n", b"\r\n--b--\r\n", b"MIME-Version: 1.0\r\n",
])


@st.composite
def mime_messages(draw, samples: list[bytes]):
    how = draw(st.sampled_from(["bytes", "headers", "flip", "truncate", "splice"]))
    if how == "bytes":
        return draw(st.binary(max_size=600))
    raw = bytearray(draw(st.sampled_from(samples)))
    if how == "headers":
        return b"".join(draw(st.lists(_MIME_HEADERS, max_size=8))) + bytes(raw)
    if how == "flip":
        for _ in range(draw(st.integers(1, 12))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw)
    if how == "truncate":
        return bytes(raw[:draw(st.integers(0, len(raw)))])
    at = draw(st.integers(0, len(raw)))
    return bytes(raw[:at]) + b"".join(draw(st.lists(_MIME_HEADERS, max_size=4))) + bytes(raw[at:])


def run_mime(cases: int, seed: int | None = None) -> Outcome:
    """`parse_message` never raises on any bytes; a message it does not flag has a sender; the
    loop guard and the acknowledgement work on whatever it returns, with no header injected."""
    from commons_sync.mail.messages import acknowledgement, is_automatic, parse_message

    samples = [path.read_bytes() for path in sorted(MAIL_FIXTURES.glob("*.eml"))]

    def check(raw: bytes) -> None:
        parsed = parse_message(raw)
        assert parsed.raw == raw
        assert parsed.malformed or parsed.sender_address, raw[:200]
        is_automatic(parsed, own_addresses=("propositions@reseau.example",))
        if parsed.reply_address:
            mail = acknowledgement(parsed, 42, "fr", from_addr="propositions@reseau.example")
            rendered = mail.as_bytes()
            header_block = rendered.split(b"\n\n", 1)[0].lower()
            assert b"\nbcc:" not in header_block, rendered[:400]
            assert mail["To"] is not None

    return _run("mime", cases, seed, mime_messages(samples), check)


TARGETS = {
    "amounts": run_amounts,
    "pledge_texts": run_pledge_texts,
    "webhook": run_webhook,
    "webhook_http": run_webhook_http,
    "wiki": run_wiki,
    "mime": run_mime,
}
# The share of the cases each target gets: HTTP is the same code as the test client plus a socket,
# so it gets a small sample.
WEIGHTS = {"amounts": 3, "pledge_texts": 2, "webhook": 3, "webhook_http": 0.5, "wiki": 3, "mime": 3}
