"""`/staff/…`: the triage pages, for members of the staff group logged in through DiscourseConnect.

Login: `/staff/login` stores a random nonce server-side (single use, valid `NONCE_MAX_AGE`) and
sends the browser to the forum's `/session/sso_provider` with the signed payload; the forum sends
it back to `/staff/sso` with a signed answer, whose HMAC is checked with a constant-time compare,
whose nonce is consumed (a conditional delete: a replay finds nothing), and whose `groups` must
hold COMMONS_SYNC_DISCOURSE_STAFF_GROUP. Every form is CSRF-protected (Flask-WTF); the session
cookie is HttpOnly, SameSite=Lax, and Secure when the request came over TLS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import logging
import secrets
from datetime import timedelta
from functools import wraps
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import delete, insert, select

from commons_sync import texts
from commons_sync.engine.errors import EngineError
from commons_sync.engine.money import parse_amount
from commons_sync.i18n import LANGUAGES, colon, format_money, quoted, t
from commons_sync.service import handlers, triage
from commons_sync.storage import triage_tables as tt

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
NONCE_MAX_AGE = timedelta(minutes=10)

bp = Blueprint("staff", __name__, url_prefix="/staff", template_folder=str(TEMPLATES))
csrf = CSRFProtect()


class StaffSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with `Secure` set whenever the request came over TLS."""

    def get_cookie_secure(self, app) -> bool:
        if app.config.get("SESSION_COOKIE_SECURE"):
            return True
        try:
            forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
            return request.is_secure or forwarded == "https"
        except RuntimeError:  # outside a request
            return False


@bp.record_once
def _setup(state) -> None:
    app = state.app
    # Only the staff forms are checked (below): the webhook is signed, not a browser form.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", timedelta(hours=12))
    app.session_interface = StaffSessionInterface()
    csrf.init_app(app)


def _parts() -> dict:
    return current_app.extensions["commons_sync"]


def _settings():
    return _parts()["settings"]


def _svc():
    return _parts()["service"]


def _lang() -> str:
    chosen = session.get("lang") if current_app.secret_key else None
    return chosen if chosen in LANGUAGES else _settings().language


@bp.before_request
def _before() -> Response | None:
    if not current_app.secret_key:
        return Response("COMMONS_SYNC_SECRET_KEY is not set: the staff pages are off", status=503,
                        mimetype="text/plain")
    wanted = request.args.get("lang")
    if wanted in LANGUAGES:
        session["lang"] = wanted
    g.lang = _lang()
    if request.method == "POST":
        csrf.protect()
    return None


@bp.app_context_processor
def _template_helpers() -> dict:
    lang = getattr(g, "lang", None) or "fr"
    return {"_": lambda message, **params: t(lang, message, **params), "lang": lang,
            "colon": colon(lang), "quoted": lambda text: quoted(lang, text),
            "staff_user": session.get("staff") if current_app.secret_key else None}


@bp.errorhandler(CSRFError)
def _csrf_refused(error: CSRFError):
    return render_template("staff/message.html", title=t(g.lang, "Formulaire refusé"),
                           message=t(g.lang, "Le jeton de sécurité du formulaire manque ou a expiré : "
                                             "rechargez la page et recommencez.")), 400


def staff_required(view):
    """Let the view run only for a logged-in member of the staff group; others go to the login."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not session.get("staff"):
            return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped


# --- DiscourseConnect ------------------------------------------------------------------------------


def _connect_secret() -> str | None:
    secret = _settings().discourse_connect_secret
    return secret.get_secret_value() if secret else None


def _sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _local_target(target: str | None) -> str:
    """Where to go after login: only a path of these pages, never another site."""
    if target and target.startswith("/staff") and not target.startswith("//"):
        return target
    return url_for("staff.queue")


@bp.get("/login")
def login():
    """Send the browser to the forum's DiscourseConnect provider with a fresh nonce."""
    secret = _connect_secret()
    settings = _settings()
    if not secret or not settings.discourse_url:
        return render_template("staff/message.html", title=t(g.lang, "Connexion impossible"),
                               message=t(g.lang, "La connexion par le forum n'est pas configurée "
                                                 "(COMMONS_SYNC_DISCOURSE_CONNECT_SECRET).")), 503
    svc = _svc()
    nonce = secrets.token_urlsafe(32)
    now = svc.clock()

    def use_case(uow) -> None:
        triage.forget_expired_nonces(uow.repo.conn, now, NONCE_MAX_AGE)
        uow.repo.conn.execute(insert(tt.staff_login_nonces).values(
            nonce=nonce, created_at=now, return_to=_local_target(request.args.get("next"))))
        uow.commit()

    svc.run(use_case)
    payload = base64.b64encode(urlencode({
        "nonce": nonce, "return_sso_url": url_for("staff.sso_return", _external=True)}).encode()).decode()
    query = urlencode({"sso": payload, "sig": _sign(secret, payload)})
    return redirect(f"{settings.discourse_url.rstrip('/')}/session/sso_provider?{query}")


def _consume_nonce(nonce: str) -> str | None:
    """Use the nonce once: its return path if it was issued here and is still fresh, else None."""
    svc = _svc()
    now = svc.clock()
    n = tt.staff_login_nonces

    def use_case(uow):
        conn = uow.repo.conn
        return_to = conn.execute(select(n.c.return_to).where(
            n.c.nonce == nonce, n.c.created_at >= now - NONCE_MAX_AGE)).first()
        deleted = conn.execute(delete(n).where(n.c.nonce == nonce)).rowcount
        uow.commit()
        return return_to[0] if return_to is not None and deleted == 1 else None

    return svc.run(use_case)


def _refused(message: str, status: int = 403):
    return render_template("staff/message.html", title=t(g.lang, "Accès refusé"), message=message), status


@bp.get("/sso")
def sso_return():
    """The forum's signed answer: check the signature, the nonce and the staff group, then log in."""
    secret = _connect_secret()
    payload, sig = request.args.get("sso", ""), request.args.get("sig", "")
    if not secret or not payload or not hmac.compare_digest(_sign(secret, payload).encode(),
                                                            sig.lower().encode("utf-8", "replace")):
        return _refused(t(g.lang, "La réponse du forum n'est pas signée correctement."))
    try:
        fields = {key: values[0] for key, values in
                  parse_qs(base64.b64decode(payload).decode(), keep_blank_values=True).items()}
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return _refused(t(g.lang, "La réponse du forum est illisible."), 400)
    return_to = _consume_nonce(fields.get("nonce", ""))
    if return_to is None:
        return _refused(t(g.lang, "Cette connexion a expiré ou a déjà servi : recommencez."))
    staff_group = _settings().discourse_staff_group.casefold()
    groups = {name.strip().casefold() for name in fields.get("groups", "").split(",") if name.strip()}
    username = fields.get("username", "")
    if staff_group not in groups:
        log.info("staff login refused for %s (not in group %s)", username, staff_group)
        return _refused(t(g.lang, "Ces pages sont réservées aux membres du groupe « {group} ».",
                          group=_settings().discourse_staff_group))
    lang = session.get("lang")
    session.clear()
    session.permanent = True
    session["staff"] = {"username": username, "name": fields.get("name") or username}
    if lang:
        session["lang"] = lang
    return redirect(return_to)


@bp.post("/logout")
def logout():
    session.pop("staff", None)
    return redirect(url_for("staff.queue"))


# --- the triage pages -----------------------------------------------------------------------------


@bp.get("/")
def index():
    return redirect(url_for("staff.queue"))


@bp.get("/triage")
@staff_required
def queue():
    """The queue: submissions (queued by default) with their likely duplicates."""
    status = request.args.get("status", triage.QUEUED)
    items = triage.list_submissions(_svc(), None if status == "all" else status)
    items.reverse()  # newest first
    return render_template("staff/queue.html", items=items, status=status,
                           statuses=("queued", "accepted", "rejected", "merged", "spam", "all"))


def _status_label(status: str) -> str:
    lang = g.lang
    return {"queued": t(lang, "à trier"), "accepted": t(lang, "acceptée"), "rejected": t(lang, "refusée"),
            "merged": t(lang, "fusionnée"), "spam": t(lang, "indésirable"),
            "all": t(lang, "toutes")}.get(status, status)


@bp.app_template_filter("status_label")
def _status_filter(status: str) -> str:
    return _status_label(status)


@bp.get("/triage/<int:submission_id>")
@staff_required
def submission(submission_id: int):
    """One submission: sender, date, text, attachments, the raw source, and the decision forms."""
    svc = _svc()
    try:
        item = triage.show_submission(svc, submission_id, g.lang)
    except EngineError:
        abort(404)
    now = svc.clock()
    rounds = [r for r in handlers.list_rounds(svc) if r["status"] == "open"]
    commons = handlers.list_commons(svc) if item["status"] == triage.QUEUED else []
    return render_template("staff/submission.html", item=item, rounds=rounds, commons=commons,
                           now=now, money=lambda units, currency: format_money(
                               int(round(units * 100)), currency, g.lang) if units is not None else "")


@bp.get("/triage/<int:submission_id>/attachments/<int:index>")
@staff_required
def attachment(submission_id: int, index: int):
    """An attachment, always as a download (never rendered in the page's origin)."""
    try:
        filename, _content_type, data = triage.attachment_data(_svc(), submission_id, index)
    except EngineError:
        abort(404)
    if data is None:
        abort(404)
    # send_file writes the name as RFC 6266 asks (an ASCII fallback and `filename*` in UTF-8).
    response = send_file(io.BytesIO(data), mimetype="application/octet-stream", as_attachment=True,
                         download_name=filename or f"piece-{index}", max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _decide(submission_id: int, action, success):
    """Run a decision and come back to the submission's page with a message (`success(result)`)."""
    try:
        result = action()
    except triage.TriageRefused as error:
        flash(error.message(g.lang), "error")
    except EngineError as error:
        flash(texts.reason(error.code, g.lang, **error.params), "error")
    else:
        flash(success(result) if callable(success) else success, "ok")
    return redirect(url_for("staff.submission", submission_id=submission_id))


def _staff_name() -> str | None:
    return (session.get("staff") or {}).get("username")


def _form_amount(name: str) -> int | None:
    value = (request.form.get(name) or "").strip()
    return parse_amount(value) if value else None


@bp.post("/triage/<int:submission_id>/accept")
@staff_required
def accept(submission_id: int):
    def action() -> int:
        acceptance = triage.Acceptance(
            title=request.form.get("title"), goal_cents=_form_amount("goal"),
            cap_cents=_form_amount("max"), round_slug=request.form.get("round") or None,
            referent=request.form.get("referent"), staff=_staff_name())
        return triage.accept(_svc(), submission_id, acceptance,
                             triage.TriageSettings.from_settings(_settings()))

    return _decide(submission_id, action, lambda commons_id: t(
        g.lang, "Proposition acceptée : commun n° {id}. Le sujet du forum, la fiche du wiki et le "
                "mail à l'expéditeur suivent.", id=commons_id))


@bp.post("/triage/<int:submission_id>/reject")
@staff_required
def reject(submission_id: int):
    return _decide(submission_id, lambda: triage.reject(
        _svc(), submission_id, request.form.get("reason", ""), mail=bool(request.form.get("mail")),
        staff=_staff_name()), t(g.lang, "Proposition refusée."))


@bp.post("/triage/<int:submission_id>/merge")
@staff_required
def merge(submission_id: int):
    into = request.form.get("into", "")
    if not into.isdigit():
        flash(t(g.lang, "Choisissez le commun dans lequel fusionner."), "error")
        return redirect(url_for("staff.submission", submission_id=submission_id))
    return _decide(submission_id, lambda: triage.merge(_svc(), submission_id, int(into), staff=_staff_name()),
                   t(g.lang, "Proposition fusionnée dans le commun n° {id}.", id=into))


@bp.post("/triage/<int:submission_id>/retry-topic")
@staff_required
def retry_topic(submission_id: int):
    return _decide(submission_id, lambda: triage.retry_topic_creation(_svc(), submission_id),
                   lambda retried: t(g.lang, "Le sujet du forum sera créé.") if retried
                   else t(g.lang, "Il n'y a pas de création de sujet à relancer."))


@bp.post("/triage/<int:submission_id>/spam")
@staff_required
def spam(submission_id: int):
    return _decide(submission_id, lambda: triage.mark_spam(_svc(), submission_id, staff=_staff_name()),
                   t(g.lang, "Proposition marquée comme indésirable."))
