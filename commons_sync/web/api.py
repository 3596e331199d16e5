"""The public read API (`/api/v1/…`), its OpenAPI document, and the embeddable progress badge.

The JSON is the CLI's `--json` (one place builds it: `service.handlers`), plus links; no email
address is ever part of it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

from flask import Blueprint, Response, abort, current_app, jsonify, request
from jinja2 import Environment, FileSystemLoader, select_autoescape

from commons_sync.engine.errors import NotFound
from commons_sync.i18n import format_money, t
from commons_sync.service import handlers

bp = Blueprint("api", __name__)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "web"
_badges = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2"], default=True))
BADGE_MAX_AGE = 300


def _context():
    extension = current_app.extensions["commons_sync"]
    return extension["service"], extension["settings"]


def commons_links(view: dict, settings) -> dict:
    """Where a person finds the commons: its forum topic, its wiki fiche, its badge."""
    links = {"badge": f"/badge/{view['id']}.svg", "api": f"/api/v1/commons/{view['id']}"}
    if settings.discourse_url and view.get("topic_id"):
        links["topic"] = f"{settings.discourse_url}/t/{view['topic_id']}"
    if settings.mediawiki_api_url and view.get("wiki_title"):
        index = settings.mediawiki_api_url.rsplit("/", 1)[0] + "/index.php"
        links["wiki"] = f"{index}?title={quote(view['wiki_title'].replace(' ', '_'))}"
    return links


@bp.get("/api/v1/commons/<int:commons_id>")
def commons(commons_id: int):
    service, settings = _context()
    try:
        view = handlers.show_commons(service, commons_id)
    except NotFound:
        return _not_found("commons", commons_id)
    return jsonify(view | {"links": commons_links(view, settings)})


@bp.get("/api/v1/rounds/<slug>")
def round_(slug: str):
    service, settings = _context()
    try:
        view = handlers.show_round(service, slug)
    except NotFound:
        return _not_found("round", slug)
    items = handlers.list_commons(service, slug)
    view["commons"] = [c | {"links": commons_links(c, settings)} for c in items]
    return jsonify(view)


def _not_found(what: str, key):
    _, settings = _context()
    message = t(settings.language, "Introuvable : {what} {key}.", what=what, key=key)
    return jsonify({"error": "not_found", "message": message}), 404


@bp.get("/api/v1/openapi.json")
def openapi():
    return jsonify(OPENAPI)


@bp.get("/badge/<int:commons_id>.svg")
def badge(commons_id: int):
    """An SVG badge: raised / goal and the percentage, cached for a few minutes."""
    service, settings = _context()
    try:
        view = handlers.show_commons(service, commons_id)
    except NotFound:
        abort(404)
    lang = settings.language
    cents = lambda units: round(units * 100)  # noqa: E731
    raised = format_money(cents(view["raised"]), view["currency"], lang)
    if view["goal"] is None:
        value, percent = t(lang, "idée"), 0
    else:
        goal = format_money(cents(view["goal"]), view["currency"], lang)
        percent = view["percent"]
        value = f"{raised} / {goal} · {percent} %" if lang == "fr" else f"{raised} / {goal} · {percent}%"
    label = t(lang, "cofinancement")
    label_width, value_width = 12 + 6.5 * len(label), 12 + 6.5 * len(value)
    svg = _badges.get_template("badge.svg.j2").render(
        label=label, value=value, label_width=label_width, value_width=value_width,
        width=label_width + value_width, filled_width=value_width * min(percent, 100) / 100,
        color="#2e7d32" if percent >= 100 else "#1976d2")
    etag = hashlib.sha256(svg.encode()).hexdigest()[:32]
    if request.if_none_match.contains(etag):
        return Response(status=304, headers={"ETag": f'"{etag}"', "Cache-Control": f"public, max-age={BADGE_MAX_AGE}"})
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = f"public, max-age={BADGE_MAX_AGE}"
    response.set_etag(etag)
    return response


_NUMBER_OR_NULL = {"type": ["number", "null"]}
_COMMONS = {
    "type": "object",
    "required": ["id", "topic_id", "title", "round", "status", "goal", "cap", "raised", "pledged",
                 "contributed", "matched", "cofunders", "cofunder_names", "links"],
    "properties": {
        "id": {"type": "integer"}, "topic_id": {"type": ["integer", "null"]}, "title": {"type": "string"},
        "round": {"type": "string"},
        "status": {"enum": ["idée", "en financement", "financé", "partiellement financé", "non financé",
                            "clos", "annulé"]},
        "goal": _NUMBER_OR_NULL, "cap": _NUMBER_OR_NULL, "raised": {"type": "number"},
        "pledged": {"type": "number"}, "contributed": {"type": "number"}, "matched": {"type": "number"},
        "cofunders": {"type": "integer", "minimum": 0},
        "cofunder_names": {"type": "array", "items": {"type": "string"}},
        "currency": {"type": "string"}, "percent": {"type": "integer"},
        "links": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_MEMBER = {"type": "object", "required": ["username", "allocated", "pledged", "balance"],
           "properties": {"username": {"type": "string"}, "allocated": {"type": "number"},
                          "pledged": {"type": "number"}, "balance": {"type": "number"}}}
_ROUND = {
    "type": "object", "required": ["slug", "name", "status", "opens", "closes", "members", "commons"],
    "properties": {"slug": {"type": "string"}, "name": {"type": "string"},
                   "status": {"enum": ["scheduled", "open", "closing", "closed"]},
                   "opens": {"type": "string", "format": "date-time"},
                   "closes": {"type": ["string", "null"], "format": "date-time"},
                   "members": {"type": "array", "items": _MEMBER},
                   "commons": {"type": "array", "items": _COMMONS}},
}
_ERROR = {"type": "object", "required": ["error", "message"],
          "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "commons-sync public API", "version": "1",
             "description": "Read-only figures of rounds and commons (CONTRACT §7). Amounts are numbers "
                            "in the round's currency units."},
    "paths": {
        "/api/v1/commons/{id}": {"get": {
            "operationId": "getCommons",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0, "maximum": handlers.MAX_ID}}],
            "responses": {"200": _json(_COMMONS, "The commons"), "404": _json(_ERROR, "No such commons")}}},
        "/api/v1/rounds/{slug}": {"get": {
            "operationId": "getRound",
            "parameters": [{"name": "slug", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}],
            "responses": {"200": _json(_ROUND, "The round, its members' balances and its commons"),
                          "404": _json(_ERROR, "No such round")}}},
        "/badge/{id}.svg": {"get": {
            "operationId": "getBadge",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}],
            "responses": {"200": {"description": "An SVG progress badge",
                                  "content": {"image/svg+xml": {"schema": {"type": "string"}}}},
                          "404": {"description": "No such commons"}}}},
    },
}
