"""`commons open` on the forum side: an existing topic read from the forum, or a new topic created.

`open_on_topic` reads the topic (`GET /t/{id}.json`) for its title and the number of its last
post — pledge posts must come after it, so nothing said before the commons opened counts — and
opens the commons; its status post follows through the outbox. `open_with_new_topic` opens the
commons at once and queues the triage's `create_topic` outbox kind: the worker creates the topic
in the configured category with the hidden marker naming the commons, and links it (the same path,
and the same never-twice guarantee, as an accepted proposal).
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import insert

from commons_sync.engine import events as ev
from commons_sync.engine import rules
from commons_sync.engine.errors import InvalidOperation, NotFound
from commons_sync.i18n import t
from commons_sync.storage import triage_tables as tt

from . import handlers
from .handlers import CommonsSpec, Service
from .triage import CREATE_TOPIC, discussion_url, topic_marker
from .unit_of_work import UnitOfWork


class TopicRefused(Exception):
    """The topic cannot become a commons (a private message, a deleted topic)."""

    def __init__(self, topic_id: int, why: str) -> None:
        super().__init__(f"topic {topic_id}: {why}")
        self.topic_id = topic_id
        self.why = why


def last_post_number(forum, topic_id: int, view=None) -> int:
    """The number of the topic's last post (from `GET /t/{id}.json`, plus one posts read if long)."""
    view = view or forum.get_topic(topic_id)
    if not view.post_ids:
        return 0
    last_id = view.post_ids[-1]
    known = {post.post_id: post.post_number for post in view.posts}
    if last_id not in known:
        known.update({post.post_id: post.post_number
                      for post in forum.get_topic_posts(topic_id, [last_id], include_raw=False)})
    return max(known.get(last_id, 0), max((post.post_number for post in view.posts), default=0))


def open_on_topic(svc: Service, forum, spec: CommonsSpec, base_url: str | None = None):
    """Open the forum topic `spec.topic_id` as a commons, titled as the topic unless `spec.title`.

    Raises:
        TopicRefused: the topic is a private message or deleted.
        commons_sync.discourse.errors.NotFound: no such topic on the forum.
        InvalidOperation: the topic is already a commons (`duplicate_topic`), and the engine's refusals.
    """
    view = forum.get_topic(spec.topic_id)
    if view.topic.is_private_message:
        raise TopicRefused(spec.topic_id, "private message")
    if view.topic.deleted_at is not None:
        raise TopicRefused(spec.topic_id, "deleted")
    return handlers.open_commons(svc, replace(
        spec, title=spec.title or view.topic.title,
        first_post_number=last_post_number(forum, spec.topic_id, view),
        discussion_url=discussion_url(base_url, spec.topic_id)))


def new_topic_text(title: str, referent: str | None, commons_id: int, lang: str) -> str:
    """The first post of a topic the service creates for `commons open --title`."""
    shown = title.replace("<!--", "&lt;!--")
    intro = (t(lang, "Commun ouvert au cofinancement : {title}, porté par {referent}.", title=shown,
               referent=referent.replace("<!--", "&lt;!--")) if referent
             else t(lang, "Commun ouvert au cofinancement : {title}.", title=shown))
    return f"{intro}\n\n{topic_marker(commons_id)}\n"


def open_with_new_topic(svc: Service, spec: CommonsSpec, category: int | None, lang: str = "fr") -> int:
    """Open the commons now and queue the creation of its topic in `category`; returns its id."""
    if spec.topic_id is not None:
        raise InvalidOperation("duplicate_topic", topic_id=spec.topic_id)
    now = svc.clock()

    def use_case(uow: UnitOfWork) -> int:
        round_ = uow.repo.round_by_slug(spec.round_slug, lock=True)
        if round_ is None:
            raise NotFound("not_found", what="round", key=spec.round_slug)
        title = spec.title.strip()
        commons = rules.new_commons(round_, title, spec.goal_cents, spec.cap_cents, now,
                                    referent=spec.referent, wiki_title=spec.wiki_title,
                                    organisations=spec.organisations, next_steps=spec.next_steps)
        uow.repo.add(commons)
        uow.collect([ev.CommonsOpened(commons.id, round_.id)])
        uow.repo.conn.execute(insert(tt.topic_requests).values(
            commons_id=commons.id, submission_id=None, title=title,
            raw=new_topic_text(title, spec.referent, commons.id, lang), category=category))
        uow.repo.enqueue(CREATE_TOPIC, f"{CREATE_TOPIC}:{commons.id}", {"commons_id": commons.id}, now=now)
        uow.commit()
        return commons.id

    return svc.run(use_case)
