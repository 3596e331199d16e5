"""`round remind SLUG [--dry-run]` and `commons cancel ID --reason TEXT [--redirect-to OTHER_ID]`.

Thin click wrappers over `service.reminders` and `service.cancel`; `cli.py` adds them to the
`round` and `commons` groups.
"""

from __future__ import annotations

import json

import click

from commons_sync import texts
from commons_sync.cli_common import Failure, service_of, settings_of
from commons_sync.cli_forum import build_forum_client
from commons_sync.engine.errors import EngineError
from commons_sync.i18n import format_money, t, tn


@click.command("remind")
@click.argument("slug")
@click.option("--dry-run", is_flag=True, help="Show who would get what, without sending.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def round_remind(ctx: click.Context, slug: str, dry_run: bool, as_json: bool) -> None:
    """Remind the round's members who still have budget (private messages through the forum)."""
    from commons_sync.discourse.errors import DiscourseError
    from commons_sync.service import handlers
    from commons_sync.service.reminders import duration_minutes, plan_reminders, queue_reminders

    settings = settings_of(ctx)
    lang = settings.language
    if not settings.adapter_on("discourse"):
        raise Failure(t(lang, "l'adaptateur forum n'est pas configuré (COMMONS_SYNC_DISCOURSE_URL…)"))
    svc = service_of(settings)
    try:
        group = next((r["group"] for r in handlers.list_rounds(svc) if r["slug"] == slug), None)
        if group is None:
            raise Failure(texts.reason("not_found", lang, what="round", key=slug))
        forum = build_forum_client(settings, svc)
        try:
            members = [m.username for m in forum.group_members(group)]
        except DiscourseError as error:
            raise Failure(t(lang, "le forum n'a pas répondu : {error}", error=error)) from None
        finally:
            forum.close()
        if dry_run:
            label, planned = plan_reminders(svc, slug, members)
        else:
            label, planned = queue_reminders(svc, slug, members, max_rpm=settings.discourse_max_rpm)
    except EngineError as error:
        raise Failure(texts.reason(error.code, lang, **error.params)) from None
    currency = next(r["currency"] for r in handlers.list_rounds(svc) if r["slug"] == slug)
    if as_json:
        click.echo(json.dumps([{"username": p.username, "reminder": p.reminder,
                                "balance": p.balance_cents / 100,
                                "commons_id": p.suggestion.commons_id if p.suggestion else None,
                                "commons": p.suggestion.title if p.suggestion else None}
                               for p in planned], ensure_ascii=False, indent=2))
    else:
        for p in planned:
            click.echo(f"{p.username}\t{format_money(p.balance_cents, currency, lang)}\t"
                       f"{p.suggestion.title if p.suggestion else '—'}")
    minutes = duration_minutes(len(planned), settings.discourse_max_rpm)
    if dry_run:
        click.echo(tn(lang, "Rappel « {label} » : {n} message serait envoyé (environ {minutes} min à "
                            "{rpm} requêtes/min) ; rien n'est envoyé.",
                      "Rappel « {label} » : {n} messages seraient envoyés (environ {minutes} min à "
                      "{rpm} requêtes/min) ; rien n'est envoyé.", len(planned), label=label,
                      minutes=round(minutes), rpm=settings.discourse_max_rpm), err=True)
    else:
        click.echo(tn(lang, "Rappel « {label} » : {n} message mis en file (environ {minutes} min à "
                            "{rpm} requêtes/min).",
                      "Rappel « {label} » : {n} messages mis en file (environ {minutes} min à "
                      "{rpm} requêtes/min).", len(planned), label=label, minutes=round(minutes),
                      rpm=settings.discourse_max_rpm), err=True)


@click.command("cancel")
@click.argument("commons_id", type=int)
@click.option("--reason", required=True, help="Why (told to the cofunders in the topic).")
@click.option("--redirect-to", "redirect_to", type=int,
              help="Another commons of the same round where cofunders may move their pledges.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def commons_cancel(ctx: click.Context, commons_id: int, reason: str, redirect_to: int | None,
                   as_json: bool) -> None:
    """Cancel a commons: status `annulé`, pledges released by reversing entries, cofunders told."""
    from commons_sync.service.cancel import CancelRefused, cancel_commons
    from commons_sync.service.handlers import show_commons

    settings = settings_of(ctx)
    lang = settings.language
    svc = service_of(settings)
    try:
        done = cancel_commons(svc, commons_id, reason, redirect_to=redirect_to)
        currency = show_commons(svc, commons_id)["currency"]
    except CancelRefused as error:
        raise Failure(error.message(lang)) from None
    except EngineError as error:
        raise Failure(texts.reason(error.code, lang, **error.params)) from None
    if as_json:
        click.echo(json.dumps({"id": done.commons_id, "status": "annulé",
                               "released": {k: v / 100 for k, v in done.released.items()},
                               "redirect_to": done.redirect_to,
                               "agree_until": done.agree_until.astimezone(settings.zone).isoformat()
                               if done.agree_until else None}, ensure_ascii=False, indent=2))
        return
    for username, cents in sorted(done.released.items()):
        click.echo(f"{username}\t{format_money(cents, currency, lang)}")
    if done.redirect_to is not None:
        click.echo(t(lang, "Commun {id} annulé ; ses cofinanceurs peuvent reporter leur promesse sur le "
                           "commun {target} avec « /transferer oui » jusqu'au {until}.", id=commons_id,
                     target=done.redirect_to,
                     until=done.agree_until.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")), err=True)
    else:
        click.echo(tn(lang, "Commun {id} annulé ; {n} promesse libérée.",
                      "Commun {id} annulé ; {n} promesses libérées.", len(done.released), id=commons_id),
                   err=True)
