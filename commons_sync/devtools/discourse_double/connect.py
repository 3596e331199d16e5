"""A DiscourseConnect provider: `/session/sso_provider` signs the chosen user back to the consumer."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import parse_qs, urlencode

from flask import Blueprint, Response, redirect, render_template_string, request

from commons_sync.i18n import t

from .api import double

bp = Blueprint("discourse_double_connect", __name__)

LOGIN_PAGE = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body><h1>{{ title }}</h1><p>{{ intro }}</p>
<ul>{% for user in users %}<li><a href="{{ link(user.username) }}">{{ user.username }}</a>
{% if user.name %}({{ user.name }}){% endif %}{% if user.staff %} — staff{% endif %}</li>{% endfor %}</ul>
</body></html>"""


def signature(secret: str, payload: str) -> str:
    """Hex HMAC-SHA256 of the base64 payload with the provider secret."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def encode_payload(fields: dict[str, str]) -> str:
    """Base64 (strict) of the URL-encoded fields, as DiscourseConnectBase#payload builds it."""
    return base64.b64encode(urlencode(fields).encode()).decode()


def decode_payload(payload: str) -> dict[str, str]:
    """The fields of a base64 payload (ValueError when it is not one)."""
    try:
        text = base64.b64decode(payload, validate=False).decode()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise ValueError("payload is not base64") from error
    return {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}


@bp.get("/session/sso_provider")
def sso_provider() -> Response:
    """Checks `sig`, then shows a login form (or takes `?as=username`) and redirects back signed."""
    parts = double()
    secret = parts.config.sso_secret
    payload = request.args.get("sso", "")
    sig = request.args.get("sig", "")
    if not secret:
        return Response("DiscourseConnect provider is not enabled", status=403, mimetype="text/plain")
    if not payload or not hmac.compare_digest(signature(secret, payload), sig.lower()):
        return Response("Bad signature for payload", status=422, mimetype="text/plain")
    try:
        fields = decode_payload(payload)
    except ValueError:
        return Response("Invalid payload", status=422, mimetype="text/plain")
    if not fields.get("nonce") or not fields.get("return_sso_url"):
        return Response("Invalid payload: nonce and return_sso_url are required", status=422, mimetype="text/plain")
    forum = parts.forum
    username = request.args.get("as")
    lang = "fr"
    with forum.lock:
        if not username:
            users = [user for user in forum.users_by_id.values() if user.id > 0]

            def link(name: str) -> str:
                return "/session/sso_provider?" + urlencode({"sso": payload, "sig": sig, "as": name})

            return Response(render_template_string(
                LOGIN_PAGE, lang=lang, users=users, link=link,
                title=t(lang, "Connexion au forum (double de Discourse)"),
                intro=t(lang, "Choisissez l’utilisateur sous lequel vous connecter :")), mimetype="text/html")
        user = forum.users.get(username.lower())
        if user is None:
            return Response("No such user", status=404, mimetype="text/plain")
        answer = {
            "nonce": fields["nonce"], "return_sso_url": fields["return_sso_url"], "external_id": str(user.id),
            "username": user.username, "name": user.name or "", "email": user.email,
            "admin": "true" if user.admin else "false", "moderator": "true" if user.moderator else "false",
            "groups": ",".join(group.name for group in forum.groups_of(user)),
            "avatar_url": f"{parts.config.instance_url or ''}/user_avatar/{forum.host}/{user.username}/240/{100 + user.id}_2.png",
        }
    encoded = encode_payload(answer)
    target = fields["return_sso_url"]
    target += ("&" if "?" in target else "?") + urlencode({"sso": encoded, "sig": signature(secret, encoded)})
    return redirect(target, code=302)
