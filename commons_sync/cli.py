"""The `commons-sync` command line (CONTRACT §6): thin wrappers over the service's use cases.

Results go to stdout, messages to stderr; a failure is one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import datetime
from functools import wraps

import click
from rich.console import Console
from rich.table import Table

from commons_sync import logs, texts
from commons_sync.cli_common import Failure, amount_of, emit_json, refusal, service_of, settings_of
from commons_sync.config import Settings, SettingsError, load_settings
from commons_sync.engine.errors import EngineError
from commons_sync.engine.model import PaymentState
from commons_sync.engine.results import FUNDED, IDEAS, IN_PROGRESS, UNFUNDED, Results
from commons_sync.discourse.status_post import status_label
from commons_sync.i18n import colon as i18n_colon, format_money, t, tn
from commons_sync.service import handlers
from commons_sync.service.unit_of_work import DatabaseUnavailable
from commons_sync.storage.database import upgrade

out = Console(highlight=False, soft_wrap=True)


def _settings(ctx: click.Context) -> Settings:
    return settings_of(ctx)


def _lang(ctx: click.Context) -> str:
    return settings_of(ctx).language


def use_service(func):
    """Give the command the service, and turn every refusal into one translated line."""

    @click.pass_context
    @wraps(func)
    def wrapper(ctx, *args, **kwargs):
        lang = _lang(ctx)
        svc = service_of(_settings(ctx))
        try:
            return func(ctx, svc, *args, **kwargs)
        except EngineError as error:
            raise refusal(error, lang) from None
        except DatabaseUnavailable:
            raise Failure(t(lang, "la base de données est injoignable")) from None

    return wrapper


def round_status(status: str, lang: str) -> str:
    """A round's status in the reader's language (`--json` keeps the stable English word)."""
    labels = {"scheduled": t(lang, "à venir"), "open": t(lang, "ouverte"),
              "closing": t(lang, "en cours de clôture"), "closed": t(lang, "close")}
    return labels.get(status, status)


def parse_date(ctx: click.Context, value: str | None) -> datetime | None:
    """ISO 8601 (`2026-12-01` or `2026-12-01T18:00`) in COMMONS_SYNC_TIMEZONE."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise Failure(texts.reason("invalid_date", _lang(ctx), date=value)) from None
    return when.replace(tzinfo=_settings(ctx).zone) if when.tzinfo is None else when


# ------------------------------------------------------------------------------------------------


LONG_RUNNING = ("serve", "worker", "demo")  # their INFO lines are the service's journal


class OneLineGroup(click.Group):
    """A usage error (unknown command, missing option, wrong type) is one line too, like a refusal."""

    def main(self, *args, **kwargs):
        if kwargs.get("standalone_mode", True) is False:
            return super().main(*args, **kwargs)
        try:
            status = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as error:
            hint = f" (commons-sync {error.ctx.command_path.partition(' ')[2]} --help)".replace("  ", " ") \
                if error.ctx is not None else ""
            click.echo(f"commons-sync: {error.format_message()}{hint}", err=True)
            sys.exit(error.exit_code)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.Abort:
            sys.exit(1)
        sys.exit(status if isinstance(status, int) else 0)


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-format", type=click.Choice(logs.FORMATS), envvar=logs.ENV_FORMAT,
              help="text (default) or json: one JSON object a line [COMMONS_SYNC_LOG_FORMAT]")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              envvar=logs.ENV_LEVEL,
              help="default INFO for serve, worker and demo, WARNING otherwise [COMMONS_SYNC_LOG_LEVEL]")
@click.pass_context
def main(ctx: click.Context, log_format: str | None, log_level: str | None) -> None:
    """commons-sync : cofinancer des communs là où le réseau parle déjà (Discourse, MediaWiki, e-mail)."""
    try:
        ctx.obj = {"settings": load_settings()}
    except SettingsError as error:
        raise Failure(str(error)) from None
    # The one place logging is configured for every command (secrets redacted from every line).
    logs.configure_logging(log_format or "text",
                           log_level or ("INFO" if ctx.invoked_subcommand in LONG_RUNNING else "WARNING"),
                           settings=ctx.obj["settings"])


@main.group()
def db() -> None:
    """Base de données / database."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create or migrate the database schema (idempotent)."""
    from commons_sync.bootstrap import _engine

    from sqlalchemy.exc import DBAPIError

    try:
        upgrade(_engine(_settings(ctx).database_url))
    except DBAPIError:
        raise Failure(t(_lang(ctx), "la base de données est injoignable")) from None
    click.echo(t(_lang(ctx), "Base de données à jour."), err=True)


# --- rounds ---------------------------------------------------------------------------------------


@main.group("round")
def round_group() -> None:
    """Campagnes / rounds."""


@round_group.command("create")
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--allocation", required=True, help="per member, e.g. 500 or 100 €")
@click.option("--group", "group_name", required=True, help="Discourse group whose members take part")
@click.option("--currency", default="EUR", show_default=True)
@click.option("--opens")
@click.option("--closes")
@click.option("--recurring", type=click.Choice(["yearly"]))
@click.option("--unspent", type=click.Choice(["carry", "expire"]), default="carry", show_default=True)
@click.option("--matching-ratio")
@click.option("--matching-pool")
@click.option("--matching-cap")
@click.option("--matching-group")
@click.option("--partial-threshold", type=click.IntRange(1, 100), help="percent of the goal")
@click.option("--remind-days", default="7,2", show_default=True)
@click.option("--results-topic", type=int)
@use_service
def round_create(ctx, svc, slug, name, allocation, group_name, currency, opens, closes, recurring,
                 unspent, matching_ratio, matching_pool, matching_cap, matching_group,
                 partial_threshold, remind_days, results_topic):
    """Create a funding round (it opens now unless --opens says later)."""
    try:
        days = tuple(sorted({int(d) for d in remind_days.split(",") if d.strip()}, reverse=True))
    except ValueError:
        raise Failure(t(_lang(ctx), "--remind-days attend des nombres de jours séparés par des virgules")) from None
    spec = handlers.RoundSpec(
        slug=slug, name=name, allocation_cents=amount_of(ctx, allocation), group=group_name,
        currency=currency, opens_at=parse_date(ctx, opens), closes_at=parse_date(ctx, closes),
        recurring=recurring, unspent=unspent, matching_ratio=matching_ratio,
        matching_pool_cents=amount_of(ctx, matching_pool),
        matching_cap_cents=amount_of(ctx, matching_cap), matching_group=matching_group,
        partial_threshold_pct=partial_threshold, remind_days=days, results_topic_id=results_topic)
    round_ = handlers.create_round(svc, spec)
    click.echo(round_.slug)


@round_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@use_service
def round_list(ctx, svc, as_json):
    """List the rounds."""
    rounds = handlers.list_rounds(svc)
    if as_json:
        return emit_json(rounds)
    lang = _lang(ctx)
    table = Table(t(lang, "Identifiant"), t(lang, "Nom"), t(lang, "Statut"), t(lang, "Ouverture"), t(lang, "Clôture"))
    for r in rounds:
        table.add_row(r["slug"], r["name"], round_status(r["status"], lang), r["opens"][:16], (r["closes"] or "")[:16])
    out.print(table)


@round_group.command("show")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True)
@use_service
def round_show(ctx, svc, slug, as_json):
    """Show a round and its members' balances."""
    data = handlers.show_round(svc, slug)
    if as_json:
        return emit_json(data)
    lang = _lang(ctx)
    click.echo(f"{data['name']} ({data['slug']}) — {round_status(data['status'], _lang(ctx))}")
    table = Table(t(lang, "Membre"), t(lang, "Enveloppe"), t(lang, "Promis"), t(lang, "Solde"))
    for m in data["members"]:
        table.add_row(m["username"], *(_money(m[k], data["currency"], lang) for k in ("allocated", "pledged", "balance")))
    out.print(table)


@round_group.command("grant")
@click.argument("slug")
@click.argument("username")
@click.argument("amount")
@click.option("--set", "set_to", is_flag=True, help="set the allocation instead of adding to it")
@click.option("--reason")
@click.option("--json", "as_json", is_flag=True)
@use_service
def round_grant(ctx, svc, slug, username, amount, set_to, reason, as_json):
    """Add to (or set) a member's allocation, with a reason in the ledger."""
    data = handlers.grant(svc, slug, username, amount_of(ctx, amount), set_to=set_to, reason=reason)
    if as_json:
        return emit_json(data)
    click.echo(f"{data['username']} {data['balance']}")


@round_group.command("close")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True)
@use_service
def round_close(ctx, svc, slug, as_json):
    """Close the round now and print its results."""
    results = handlers.close_round(svc, slug)
    currency = handlers.show_round(svc, slug)["currency"]
    if as_json:
        return emit_json(results_json(results))
    click.echo(render_results(results, currency, _lang(ctx)), nl=False)


SECTION_TITLES = {
    FUNDED: "Financé",
    IN_PROGRESS: "En cours de financement",
    UNFUNDED: "Non financé",
    IDEAS: "Idées",
}


def render_results(results: Results, currency: str, lang: str) -> str:
    """The results in the sections of CONTRACT §4, as text."""
    lines = []
    for key, items in results.nonempty():
        lines.append(f"== {t(lang, SECTION_TITLES[key])} ==")
        for line in items:
            if line.raised_cents is None:
                lines.append(f"* {line.title}")
                continue
            partial = " " + t(lang, "(partiel)") if line.partial else ""
            cofunders = tn(lang, "{n} cofinanceur", "{n} cofinanceurs", line.cofunders or 0)
            lines.append(f"* {line.title} - {format_money(line.raised_cents, currency, lang)} - {cofunders}{partial}")
        lines.append("")
    return "\n".join(lines)


def results_json(results: Results) -> dict:
    return {key: [{"id": l.commons_id, "title": l.title, "status": l.status.value,
                   "raised": handlers._units(l.raised_cents), "cofunders": l.cofunders}
                  for l in items] for key, items in results.sections.items()}


# --- commons --------------------------------------------------------------------------------------


@main.group("commons")
def commons_group() -> None:
    """Communs / commons."""


@commons_group.command("open")
@click.option("--topic", type=int)
@click.option("--title")
@click.option("--round", "round_slug", required=True)
@click.option("--goal")
@click.option("--max", "cap")
@click.option("--idea", is_flag=True)
@click.option("--referent")
@click.option("--wiki-title")
@use_service
def commons_open(ctx, svc, topic, title, round_slug, goal, cap, idea, referent, wiki_title):
    """Open a commons (prints its id)."""
    lang = _lang(ctx)
    if (topic is None) == (title is None):
        raise Failure(t(lang, "indiquez soit --topic, soit --title"))
    if idea == (goal is not None):
        raise Failure(t(lang, "indiquez soit --goal, soit --idea"))
    settings = _settings(ctx)
    forum_on = settings.adapter_on("discourse")
    if topic is not None and not forum_on:
        raise Failure(t(lang, "--topic demande l'adaptateur Discourse (COMMONS_SYNC_DISCOURSE_*)"))
    spec = handlers.CommonsSpec(round_slug=round_slug, title=title or "", goal_cents=amount_of(ctx, goal),
                                cap_cents=amount_of(ctx, cap), referent=referent, topic_id=topic,
                                wiki_title=wiki_title)
    if topic is not None:
        click.echo(_open_on_topic(ctx, svc, spec).id)
    elif forum_on:  # the worker creates the topic in the category; the id is known now
        from commons_sync.service.commons_open import open_with_new_topic

        click.echo(open_with_new_topic(svc, spec, settings.discourse_category, lang))
    else:
        click.echo(handlers.open_commons(svc, spec).id)


def _open_on_topic(ctx, svc, spec):
    """Read the topic from the forum and open it; the forum's refusals become one line."""
    from commons_sync.cli_forum import build_forum_client
    from commons_sync.discourse.errors import DiscourseError
    from commons_sync.discourse.errors import NotFound as ForumNotFound
    from commons_sync.service.commons_open import TopicRefused, open_on_topic

    settings, lang = _settings(ctx), _lang(ctx)
    forum = build_forum_client(settings, svc)
    try:
        return open_on_topic(svc, forum, spec, settings.discourse_url)
    except ForumNotFound:
        raise Failure(t(lang, "le sujet {topic} est introuvable sur le forum", topic=spec.topic_id)) from None
    except TopicRefused as refused:
        why = (t(lang, "c'est un message privé") if refused.why == "private message"
               else t(lang, "il est supprimé"))
        raise Failure(t(lang, "le sujet {topic} ne peut pas devenir un commun : {why}",
                        topic=spec.topic_id, why=why)) from None
    except DiscourseError as error:
        raise Failure(t(lang, "le forum n'a pas répondu pour le sujet {topic} : {error}",
                        topic=spec.topic_id, error=error)) from None
    finally:
        forum.close()


@commons_group.command("list")
@click.option("--round", "round_slug")
@click.option("--json", "as_json", is_flag=True)
@use_service
def commons_list(ctx, svc, round_slug, as_json):
    """List the commons."""
    items = handlers.list_commons(svc, round_slug)
    if as_json:
        return emit_json(items)
    lang = _lang(ctx)
    table = Table("id", t(lang, "Titre"), t(lang, "Statut"), t(lang, "Collecté"), t(lang, "Objectif"), t(lang, "Cofinanceurs"))
    for c in items:
        table.add_row(str(c["id"]), c["title"], status_label(c["status"], lang), _money(c["raised"], c["currency"], lang),
                      _money(c["goal"], c["currency"], lang), str(c["cofunders"]))
    out.print(table)


@commons_group.command("show")
@click.argument("commons_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@use_service
def commons_show(ctx, svc, commons_id, as_json):
    """Show one commons."""
    c = handlers.show_commons(svc, commons_id)
    if as_json:
        return emit_json(c)
    lang = _lang(ctx)
    money = lambda key: _money(c[key], c["currency"], lang)  # noqa: E731
    colon = i18n_colon(lang)
    click.echo(f"#{c['id']} {c['title']} — {status_label(c['status'], lang)}")
    raised, pledged = t(lang, "Collecté"), t(lang, "promesses")
    contributed, matched = t(lang, "apports"), t(lang, "abondement")
    click.echo(f"{raised}{colon} {money('raised')} / {money('goal')} ({c['percent']} %)"
               f" — {pledged} {money('pledged')}, {contributed} {money('contributed')},"
               f" {matched} {money('matched')}")
    click.echo(f"{tn(lang, '{n} cofinanceur', '{n} cofinanceurs', c['cofunders'])}{colon} {', '.join(c['cofunder_names'])}")


# --- contributions and pledges ---------------------------------------------------------------------


@main.group("contribution")
def contribution_group() -> None:
    """Apports / contributions."""


@contribution_group.command("add")
@click.option("--commons", "commons_id", type=int, required=True)
@click.option("--amount", required=True)
@click.option("--source", required=True)
@click.option("--member")
@use_service
def contribution_add(ctx, svc, commons_id, amount, source, member):
    """Record money from outside the forum (prints its id)."""
    click.echo(handlers.add_contribution(svc, commons_id, amount_of(ctx, amount), source, member))


def _mark_options(func):
    func = click.option("--paid", "state", flag_value=PaymentState.PAID.value)(func)
    func = click.option("--invoiced", "state", flag_value=PaymentState.INVOICED.value)(func)
    return click.argument("item_id", type=int)(func)


@contribution_group.command("mark")
@_mark_options
@use_service
def contribution_mark(ctx, svc, item_id, state):
    """Mark a contribution invoiced or paid."""
    _mark(ctx, svc, "contribution", item_id, state)


@main.group("pledge")
def pledge_group() -> None:
    """Promesses / pledges."""


@pledge_group.command("list")
@click.option("--round", "round_slug")
@click.option("--commons", "commons_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@use_service
def pledge_list(ctx, svc, round_slug, commons_id, as_json):
    """List pledge posts and their state."""
    items = handlers.list_pledges(svc, round_slug, commons_id)
    if as_json:
        return emit_json(items)
    table = Table("id", "post", "commons", t(_lang(ctx), "Membre"), t(_lang(ctx), "Montant"), "state", "payment")
    for p in items:
        table.add_row(*(str(p[k]) for k in ("id", "post_id", "commons_id", "username", "amount", "state", "payment")))
    out.print(table)


@pledge_group.command("mark")
@_mark_options
@use_service
def pledge_mark(ctx, svc, item_id, state):
    """Mark a pledge invoiced or paid."""
    _mark(ctx, svc, "pledge", item_id, state)


def _mark(ctx, svc, kind, item_id, state):
    if state is None:
        raise Failure(t(_lang(ctx), "indiquez --invoiced ou --paid"))
    data = handlers.mark_payment(svc, kind, item_id, PaymentState(state))
    click.echo(f"{data['id']} {data['payment']}")


# --- export ---------------------------------------------------------------------------------------


@main.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="file (default: stdout)")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@use_service
def export(ctx, svc, output, fmt):
    """Write the ledger for the accountant (CSV for French Excel/LibreOffice by default)."""
    rows = handlers.export_rows(svc)
    data = ledger_csv(rows, _lang(ctx), _settings(ctx).zone) if fmt == "csv" else ledger_json(rows)
    if output:
        with open(output, "wb") as handle:
            handle.write(data)
    else:
        sys.stdout.buffer.write(data)


def ledger_csv(rows, lang: str, zone) -> bytes:
    """UTF-8 with BOM, `;` separator, decimal comma: opens right in French spreadsheets."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow([t(lang, "N°"), t(lang, "Date"), t(lang, "Campagne"), t(lang, "Membre"),
                     t(lang, "Commun n°"), t(lang, "Commun"), t(lang, "Type"), t(lang, "Montant"),
                     t(lang, "Devise"), t(lang, "État"), t(lang, "Note")])
    for r in rows:
        amount = f"{r.amount_cents / 100:.2f}".replace(".", ",")
        at = r.at if r.at.tzinfo else r.at.replace(tzinfo=__import__("datetime").timezone.utc)
        writer.writerow([r.id, at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"), r.slug, r.username or "",
                         r.commons_id or "", r.title or "", r.kind, amount, r.currency, r.payment or "",
                         r.note or ""])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def ledger_json(rows) -> bytes:
    return json.dumps([{"id": r.id, "at": r.at.isoformat(), "round": r.slug, "member": r.username,
                        "commons_id": r.commons_id, "commons": r.title, "kind": r.kind,
                        "amount": handlers._units(r.amount_cents), "currency": r.currency,
                        "state": r.payment, "note": r.note} for r in rows],
                      ensure_ascii=False, indent=2).encode("utf-8")


# --- wiki -----------------------------------------------------------------------------------------


@main.group("wiki")
def wiki_group() -> None:
    """Wiki (MediaWiki)."""


def _wiki(ctx):
    from commons_sync.bootstrap import connect_wiki
    from commons_sync.mediawiki.errors import WikiError

    settings = _settings(ctx)
    if not settings.adapter_on("mediawiki"):
        raise Failure(t(settings.language, "l'adaptateur wiki est éteint : réglez COMMONS_SYNC_MEDIAWIKI_API_URL, _USERNAME et _PASSWORD"))
    try:
        return connect_wiki(settings)
    except WikiError as error:
        raise Failure(t(settings.language, "wiki injoignable : {error}", error=type(error).__name__)) from None


@wiki_group.command("install")
@use_service
def wiki_install(ctx, svc):
    """Create or update Modèle:Fiche commun, its documentation and Catégorie:Communs."""
    from commons_sync.mediawiki import install

    edited = install(_wiki(ctx), _lang(ctx))
    for title in edited:
        click.echo(title)
    if not edited:
        click.echo(t(_lang(ctx), "Le modèle est déjà à jour."), err=True)


@wiki_group.command("sync")
@click.option("--all", "everything", is_flag=True, help="every fiche and results page, not only what changed")
@use_service
def wiki_sync_command(ctx, svc, everything):
    """Bring the fiches and results pages up to date (pending changes, or --all)."""
    from rich.progress import Progress

    from commons_sync.service import wiki_sync
    from commons_sync.service.worker import deliver_outbox

    wiki, lang = _wiki(ctx), _lang(ctx)
    senders = wiki_sync.WikiSenders(svc, lambda: wiki, lang).senders()
    if everything:
        total = len(handlers.list_commons(svc))
        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task(t(lang, "Fiches"), total=total)
            counts = wiki_sync.sync_all_fiches(svc, wiki, lang, progress=lambda n: progress.advance(task, n))
        for round_id in svc.run(lambda uow: [r.id for r in uow.repo.rounds()]):
            wiki_sync.sync_round_results(svc, wiki, round_id, lang)
        click.echo(tn(lang, "{n} fiche modifiée sur {pages}.", "{n} fiches modifiées sur {pages}.",
                      counts["edited"], pages=counts["pages"]))
        return
    sent = failed = 0
    while True:
        report = deliver_outbox(svc, senders)
        sent, failed = sent + report.sent, failed + report.failed
        if not report.attempted or report.failed:
            break
    click.echo(tn(lang, "{n} mise à jour envoyée, {failed} en échec.",
                  "{n} mises à jour envoyées, {failed} en échec.", sent, failed=failed))
    if failed:
        ctx.exit(1)


# --- demo -----------------------------------------------------------------------------------------


@main.command("demo")
@click.option("--no-wiki", is_flag=True, help="run without MediaWiki (where PHP cannot be installed)")
@click.option("--exit-after-replay", is_flag=True, help="stop after the replay (for scripts and tests)")
@click.pass_context
def demo(ctx, no_wiki, exit_after_replay):
    """Replay the network's 2018 experiment on a local forum, wiki and service; stay up until Ctrl-C."""
    from commons_sync.demo import run_demo

    run_demo(_settings(ctx), out, with_wiki=not no_wiki, exit_after_replay=exit_after_replay)


def _money(value, currency: str, lang: str) -> str:
    if value is None:
        return "—"
    return format_money(round(value * 100), currency, lang)


def _register_adapter_commands() -> None:
    """The forum, triage and mail commands live in their own modules; they join the group here."""
    from commons_sync import cli_forum, cli_triage

    for command in (cli_forum.serve, cli_forum.worker, cli_forum.reconcile, cli_triage.triage,
                    cli_triage.mail):
        main.add_command(command)
    from commons_sync import cli_lifecycle  # `round remind`, `commons cancel` (issue 8)

    round_group.add_command(cli_lifecycle.round_remind)
    commons_group.add_command(cli_lifecycle.commons_cancel)


_register_adapter_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
