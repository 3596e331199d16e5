"""Plain HTML pages so a person can look at the double's forum in a browser."""

from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, render_template_string, url_for

from commons_sync.i18n import t

from .api import double

bp = Blueprint("discourse_double_pages", __name__)

LAYOUT = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:sans-serif;max-width:50em;margin:auto}article{border-top:1px solid #ccc;padding:.5em 0}
aside.quote{background:#f4f4f4;padding:.2em .8em;margin:.5em 0}.meta{color:#666;font-size:.9em}
.deleted{opacity:.5}</style></head><body>
<p><a href="{{ url_for('discourse_double_pages.index') }}">{{ home }}</a></p>
<h1>{{ title }}</h1>{{ content|safe }}</body></html>"""

INDEX = """<ul>{% for topic in topics %}<li><a href="{{ url_for('discourse_double_pages.topic_with_slug',
slug=topic.slug, topic_id=topic.id) }}">{{ topic.title }}</a> <span class="meta">({{ counts[topic.id] }})</span>
</li>{% else %}<li>{{ empty }}</li>{% endfor %}</ul>"""

TOPIC = """{% for post, user in posts %}<article id="post_{{ post.post_number }}"
class="{{ 'deleted' if post.deleted_at else '' }}"><p class="meta">#{{ post.post_number }} ·
<strong>{{ user.name or user.username }}</strong> (@{{ user.username }}) · {{ post.created_at }}
{% if post.reply_to_post_number %} · ↩ #{{ post.reply_to_post_number }}{% endif %}
{% if post.version > 1 %} · v{{ post.version }}{% endif %}{% if post.locked %} · 🔒{% endif %}</p>
<div class="cooked">{{ post.cooked|safe }}</div></article>{% endfor %}"""


@bp.get("/")
def index() -> str:
    """The list of public topics, newest first."""
    forum = double().forum
    lang = "fr"
    with forum.lock:
        topics = sorted((topic for topic in forum.topics.values()
                         if topic.archetype == "regular" and topic.deleted_at is None),
                        key=lambda topic: topic.id, reverse=True)
        counts = {topic.id: forum.topic_posts_count(topic) for topic in topics}
        content = render_template_string(INDEX, topics=topics, counts=counts,
                                         empty=t(lang, "Aucun sujet pour l’instant."))
    return render_template_string(LAYOUT, lang=lang, title=t(lang, "Sujets"), content=content,
                                  home=t(lang, "Accueil"))


@bp.get("/t/<int:topic_id>")
def topic_without_slug(topic_id: int) -> Response:
    forum = double().forum
    with forum.lock:
        topic = forum.topics.get(topic_id)
        if topic is None:
            abort(404)
        return redirect(url_for("discourse_double_pages.topic_with_slug", slug=topic.slug, topic_id=topic_id))


@bp.get("/t/<slug>/<int:topic_id>")
def topic_with_slug(slug: str, topic_id: int) -> Response | str:
    """A topic's posts with their authors and cooked HTML; a wrong slug redirects, as in Discourse."""
    forum = double().forum
    lang = "fr"
    with forum.lock:
        topic = forum.topics.get(topic_id)
        if topic is None or topic.archetype != "regular":
            abort(404)
        if slug != topic.slug:
            return redirect(url_for("discourse_double_pages.topic_with_slug", slug=topic.slug, topic_id=topic_id))
        posts = [(forum.posts[post_id], forum.users_by_id[forum.posts[post_id].user_id]) for post_id in topic.post_ids
                 if forum.posts[post_id].deleted_at is None]
        content = render_template_string(TOPIC, posts=posts)
    return render_template_string(LAYOUT, lang=lang, title=topic.title, content=content, home=t(lang, "Accueil"))
