"""The forum side of a round's life: the `/annuler`, `/transferer`, `/rappels` commands, and the
senders of its posts (cancel notices, reminders, the funded thanks and the results, each once).

Commands of a post version are carried out once (`lifecycle_post_commands`, in the transaction
of their effect), like the other commands in `service.forum`. Who may: staff for `/annuler`, a
cofunder of the cancelled commons for `/transferer`, anyone for `/rappels`.

Announcements made once whatever happens later (`lifecycle_announcements`, unique per kind and
subject): the thanks when a commons is funded (crossing the goal again later posts nothing) and a
round's results. The row is written right after the forum accepted the post; a crash in between
(the only window) could post it twice.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlalchemy import insert, select, update

from commons_sync import texts
from commons_sync.discourse.commands import ForumCommand, parse_switch
from commons_sync.discourse.errors import CommandSyntaxError
from commons_sync.discourse.events import PostSnapshot
from commons_sync.engine.errors import EngineError
from commons_sync.engine.model import Status
from commons_sync.i18n import t
from commons_sync.storage import lifecycle_tables as lt

from . import handlers, outbox
from .cancel import NOTICE, CancelRefused, agree_in, cancel_in
from .handlers import Service
from .lifecycle_texts import money, render
from .reminders import REMINDER_PM, ReminderSender, set_reminders
from .unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

LIFECYCLE_COMMANDS = ("annuler", "transferer", "rappels")
FUNDED, RESULTS = "funded", "results"


# --- commands ------------------------------------------------------------------------------------


def _digest(commands: list[ForumCommand]) -> str:
    text = "\n".join(f"{c.name} {c.argument}" for c in commands)
    return hashlib.sha256(text.encode()).hexdigest()


def _done(conn, post: PostSnapshot, digest: str) -> bool:
    c = lt.lifecycle_post_commands
    row = conn.execute(select(c.c.version, c.c.digest).where(c.c.post_id == post.post_id)).first()
    return row is not None and (row.version > post.version
                                or (row.version == post.version and row.digest == digest))


def _record(conn, post: PostSnapshot, digest: str) -> None:
    c = lt.lifecycle_post_commands
    if conn.execute(select(c.c.post_id).where(c.c.post_id == post.post_id)).first() is None:
        conn.execute(insert(c).values(post_id=post.post_id, version=post.version, digest=digest))
    else:
        conn.execute(update(c).where(c.c.post_id == post.post_id).values(version=post.version, digest=digest))


def run_lifecycle_commands(applier, post: PostSnapshot, commands: list[ForumCommand]) -> None:
    """Carry out the post's `/annuler`, `/transferer`, `/rappels` lines (`applier`: a `DeliveryApplier`)."""
    from .forum import _commons_info

    relevant = [c for c in commands if c.name in LIFECYCLE_COMMANDS]
    if not relevant:
        return
    svc: Service = applier.svc
    digest = _digest(relevant)
    if svc.run(lambda uow: _done(uow.repo.conn, post, digest)):
        return
    lang = applier.settings.language
    info = _commons_info(svc, post.topic_id)
    # What the forum must tell is asked before the transaction (it may wait for the rate limit).
    staff = any(c.name == "annuler" for c in relevant) and applier._is_staff(post.username)
    is_member = True
    if info is not None and any(c.name == "transferer" for c in relevant):
        is_member = applier.membership.in_group(post.username, post.user_id, info.group)

    def use_case(uow: UnitOfWork) -> None:
        conn = uow.repo.conn
        if _done(conn, post, digest):
            return
        now = svc.clock()
        replies: list[str] = []
        for command in relevant:
            if command.name == "rappels":
                try:
                    on = parse_switch(command.argument)
                except CommandSyntaxError as exc:
                    replies.append(exc.message(lang))
                    continue
                set_reminders(uow, post.username, on, post.post_id, now)
                replies.append(t(lang, "C'est noté : vous recevrez de nouveau les rappels de campagne.") if on
                               else t(lang, "C'est noté : vous ne recevrez plus de rappels de campagne. "
                                            "« /rappels oui » les rétablit."))
            elif info is None:
                continue
            elif command.name == "annuler":
                if not staff:
                    replies.append(t(lang, "Seuls les membres du groupe « {group} » peuvent annuler un "
                                           "commun avec /annuler.", group=applier.settings.staff_group))
                    continue
                try:
                    cancel_in(uow, info.commons_id, command.argument, redirect_to=None, by=post.username,
                              reply_to_post_number=post.post_number, now=now)
                except CancelRefused as exc:
                    replies.append(exc.message(lang))
                except EngineError as exc:
                    replies.append(texts.reason(exc.code, lang, **exc.params))
            elif command.name == "transferer":
                try:
                    agree = parse_switch(command.argument)
                except CommandSyntaxError as exc:
                    replies.append(exc.message(lang))
                    continue
                answer = agree_in(uow, info.commons_id, post.username, agree, post_id=post.post_id,
                                  is_member=is_member, now=now)
                replies.append(answer.message(lang, applier_zone(applier)))
        for index, message in enumerate(replies):
            uow.repo.enqueue(outbox.REPLY, f"{outbox.REPLY}:lifecycle:{post.post_id}:{post.version}:{index}",
                             {"topic_id": post.topic_id, "post_number": post.post_number,
                              "username": post.username, "message": message})
        _record(conn, post, digest)
        uow.commit()

    svc.run(use_case)


def applier_zone(applier) -> ZoneInfo:
    return getattr(applier.svc, "zone", None) or ZoneInfo("Europe/Paris")


# --- senders -------------------------------------------------------------------------------------


def _announced(svc: Service, kind: str, subject_id: int) -> bool:
    a = lt.lifecycle_announcements
    return svc.run(lambda uow: uow.repo.conn.execute(
        select(a.c.id).where(a.c.kind == kind, a.c.subject_id == subject_id)).first() is not None)


def _announce(svc: Service, kind: str, subject_id: int, post_id: int | None) -> None:
    a = lt.lifecycle_announcements

    def use_case(uow: UnitOfWork) -> None:
        conn = uow.repo.conn
        if conn.execute(select(a.c.id).where(a.c.kind == kind, a.c.subject_id == subject_id)).first() is None:
            conn.execute(insert(a).values(kind=kind, subject_id=subject_id, post_id=post_id,
                                          sent_at=svc.clock()))
        uow.commit()

    svc.run(use_case)


def announced(svc: Service, kind: str, subject_id: int) -> bool:
    """Whether the announcement `kind` ("funded", "results") was made for this commons or round."""
    return _announced(svc, kind, subject_id)


def wiki_page_url(api_url: str | None, title: str) -> str | None:
    """The page's address on the wiki whose API is `api_url` (`…/api.php` → `…/index.php?title=…`)."""
    if not api_url:
        return None
    base = api_url.rsplit("/", 1)[0]
    return f"{base}/index.php?title={quote(title.replace(' ', '_'))}"


class LifecycleSenders:
    """Senders of the lifecycle's outbox kinds, and of the funded thanks and results, once each.

    Args:
        svc: the service. forum: a `DiscourseClient`. lang, zone: how people read it.
        wiki_api_url: COMMONS_SYNC_MEDIAWIKI_API_URL, to link the results page (None: named only).
    """

    def __init__(self, svc: Service, forum, lang: str = "fr", zone: ZoneInfo | None = None,
                 wiki_api_url: str | None = None) -> None:
        self.svc = svc
        self.forum = forum
        self.lang = lang
        self.zone = zone or ZoneInfo("Europe/Paris")
        self.wiki_api_url = wiki_api_url
        self.reminders = ReminderSender(svc, forum, lang, self.zone)

    def senders(self) -> dict:
        return {NOTICE: self.send_notice, REMINDER_PM: self.reminders.send,
                outbox.FUNDED_NOTICE: self.send_funded_thanks,
                outbox.ROUND_RESULTS_POST: self.send_round_results}

    def _when(self, moment: datetime) -> str:
        local = moment.astimezone(self.zone)
        return f"{format_date(local.date(), 'long', locale=self.lang)} {local:%H:%M}"

    def send_notice(self, payload: dict) -> None:
        """A reply rendered from a template (today: the cancel notice)."""
        context = dict(payload["context"])
        context["cofunders"] = [f"@{name}" for name in context.get("cofunders", [])]
        redirect = context.get("redirect")
        if redirect:
            context["redirect"] = {"title": redirect["title"],
                                   "link": redirect.get("url") or f"/t/{redirect['topic_id']}",
                                   "until": self._when(datetime.fromisoformat(redirect["until"]))}
        raw = render(f"{payload['template']}.md.j2", self.lang, **context)
        self.forum.create_post(payload["topic_id"], raw,
                               reply_to_post_number=payload.get("reply_to_post_number") or 1)

    def send_funded_thanks(self, payload: dict) -> None:
        """Thank the cofunders by name, once per commons, if it is funded when this is sent."""
        commons_id = payload["commons_id"]
        if _announced(self.svc, FUNDED, commons_id):
            return

        def use_case(uow: UnitOfWork):
            commons = uow.repo.commons(commons_id)
            if commons is None or commons.topic_id is None or commons.status is not Status.FUNDED:
                return None
            return commons, uow.repo.round(commons.round_id), uow.repo.cofunder_names([commons.id]).get(commons.id, [])

        found = self.svc.run(use_case)
        if found is None:
            return  # fell below the goal before this was sent: the next crossing queues it again
        commons, round_, names = found
        raw = render("funded_thanks.md.j2", self.lang, f=commons_figures(commons, round_),
                     money=money(round_.currency, self.lang), mentions=[f"@{n}" for n in names],
                     referent=commons.referent)
        post = self.forum.create_post(commons.topic_id, raw, reply_to_post_number=1)
        _announce(self.svc, FUNDED, commons_id, getattr(post, "post_id", None))

    def send_round_results(self, payload: dict) -> None:
        """The closed round's results in its results topic, once, linking each topic and the wiki page."""
        from .wiki_sync import results_title

        round_id = payload["round_id"]
        if _announced(self.svc, RESULTS, round_id):
            return
        round_ = self.svc.run(lambda uow: uow.repo.round(round_id))
        if round_ is None or round_.results_topic_id is None:
            return

        results = handlers.results(self.svc, round_.slug)
        titles = {"funded": t(self.lang, "Financé"), "in_progress": t(self.lang, "En cours de financement"),
                  "unfunded": t(self.lang, "Non financé"), "ideas": t(self.lang, "Idées")}
        page = results_title(round_)
        raw = render("round_results_post.md.j2", self.lang, round_name=round_.name,
                     sections=[(titles[key], lines) for key, lines in results.nonempty()],
                     money=money(round_.currency, self.lang), results_page=page,
                     results_url=wiki_page_url(self.wiki_api_url, page))
        post = self.forum.create_post(round_.results_topic_id, raw, reply_to_post_number=1)
        _announce(self.svc, RESULTS, round_id, getattr(post, "post_id", None))


def commons_figures(commons, round_):
    """The fields the funded thanks shows (a `StatusFigures`)."""
    from commons_sync.discourse.status_post import StatusFigures

    return StatusFigures(
        title=commons.title, status=commons.status.value, currency=round_.currency,
        goal_cents=commons.goal_cents, cap_cents=commons.cap_cents, pledged_cents=commons.pledged_cents,
        contributed_cents=commons.contributed_cents, matched_cents=commons.matched_cents,
        cofunder_names=(), round_name=round_.name, closes_at=round_.closes_at,
        round_closed=round_.closed_at is not None, referent=commons.referent,
        organisations=commons.organisations, next_steps=commons.next_steps)
