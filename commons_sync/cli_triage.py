"""`triage list|show|accept|reject|merge|spam` and `mail poll`: thin click wrappers over the triage use cases.

They are plain click objects (`triage`, `mail`); `cli.py` registers them on the `commons-sync`
group, whose context holds the settings. Run alone, they read the settings themselves.
"""

from __future__ import annotations


import click

from commons_sync.cli_common import Failure, amount_of, emit_json, refusal, service_of, settings_of
from commons_sync.i18n import colon as i18n_colon, t


def _run(ctx: click.Context, action):
    """Build the service, run `action(svc, settings)`, and turn every refusal into one line."""
    from commons_sync.engine.errors import EngineError
    from commons_sync.mail.errors import MailError
    from commons_sync.service.triage import TriageRefused

    settings = settings_of(ctx)
    lang = settings.language
    try:
        return action(service_of(settings), settings)
    except TriageRefused as error:
        raise Failure(error.message(lang)) from None
    except EngineError as error:
        raise refusal(error, lang) from None
    except MailError as error:
        raise Failure(t(lang, "la boîte aux lettres n'a pas répondu : {error}", error=error)) from None


@click.group("triage")
def triage() -> None:
    """Propositions reçues par e-mail / proposals received by email."""


@triage.command("list")
@click.option("--status", type=click.Choice(["queued", "accepted", "rejected", "merged", "spam"]),
              help="Only the submissions with this status (default: all).")
@click.option("--json", "as_json", is_flag=True, help="An array of objects, for scripts.")
@click.pass_context
def triage_list(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """List the submissions, with their likely duplicates."""
    from commons_sync.service.triage import list_submissions

    items = _run(ctx, lambda svc, settings: list_submissions(svc, status))
    if as_json:
        emit_json(items)
        return
    lang = settings_of(ctx).language
    for item in items:
        duplicates = ", ".join(f"{d['kind']} {d['id']}" for d in item["possible_duplicates"])
        line = f"{item['id']}\t{item['reference']}\t{item['status']}\t{item['sender_name'] or ''}\t{item['subject']}"
        if duplicates:
            line += "\t" + t(lang, "doublon possible : {items}", items=duplicates)
        click.echo(line)


@triage.command("show")
@click.argument("submission_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="One object, for scripts.")
@click.option("--raw", "show_raw", is_flag=True, help="Print the raw source of the message.")
@click.pass_context
def triage_show(ctx: click.Context, submission_id: int, as_json: bool, show_raw: bool) -> None:
    """Show one submission: sender, date, text, attachments."""
    from commons_sync.service.triage import show_submission

    lang = settings_of(ctx).language
    item = _run(ctx, lambda svc, settings: show_submission(svc, submission_id, lang))
    if as_json:
        emit_json(item)
        return
    if show_raw:
        click.echo(item["raw"])
        return
    sender = item["sender_name"] or ""
    if item["sender_address"]:
        sender = f"{sender} <{item['sender_address']}>".strip()
    colon = i18n_colon(lang)
    label = {key: t(lang, text) for key, text in (
        ("reference", "Référence"), ("sender", "Expéditeur"), ("received", "Reçu le"), ("subject", "Objet"),
        ("malformed", "Message mal formé"), ("attachment", "Pièce jointe"))}
    lines = [
        f"{label['reference']}{colon} {item['reference']} ({item['status']})",
        f"{label['sender']}{colon} {sender}",
        f"{label['received']}{colon} {item['received_at']}",
        f"{label['subject']}{colon} {item['subject']}",
    ]
    if item["malformed"]:
        lines.append(f"{label['malformed']}{colon} {item['malformed_description']}")
    for attachment in item["attachments"]:
        lines.append(f"{label['attachment']}{colon} {attachment['filename'] or '?'} "
                     f"({attachment['content_type']}, {attachment['size']} B)")
    for duplicate in item["possible_duplicates"]:
        lines.append(t(lang, "Doublon possible : {kind} {id} « {title} » ({score} %)", **duplicate))
    click.echo("\n".join(lines) + "\n\n" + item["text"])


@triage.command("accept")
@click.argument("submission_id", type=int)
@click.option("--title", help="The commons' title (default: the subject).")
@click.option("--goal", help="Goal (objectif); without it the commons is an idea.")
@click.option("--max", "cap", help="Cap (plafond).")
@click.option("--round", "round_slug", help="Round (default: the one open round).")
@click.option("--referent", help="Display name or forum username (default: the sender's name).")
@click.pass_context
def triage_accept(ctx: click.Context, submission_id: int, title: str | None, goal: str | None,
                  cap: str | None, round_slug: str | None, referent: str | None) -> None:
    """Accept a submission: open it as a commons; its topic, status post, fiche and mail follow.

    Prints the new commons' id.
    """
    from commons_sync.service.triage import Acceptance, TriageSettings, accept

    acceptance = Acceptance(title=title, goal_cents=amount_of(ctx, goal), cap_cents=amount_of(ctx, cap),
                            round_slug=round_slug, referent=referent)
    commons_id = _run(ctx, lambda svc, settings: accept(svc, submission_id, acceptance,
                                                        TriageSettings.from_settings(settings)))
    click.echo(commons_id)


@triage.command("reject")
@click.argument("submission_id", type=int)
@click.option("--reason", required=True, help="Why (sent to the sender with --mail).")
@click.option("--mail", "send_mail", is_flag=True, help="Tell the sender by email.")
@click.pass_context
def triage_reject(ctx: click.Context, submission_id: int, reason: str, send_mail: bool) -> None:
    """Reject a submission with a reason."""
    from commons_sync.service.triage import reject

    mailed = _run(ctx, lambda svc, settings: reject(svc, submission_id, reason, mail=send_mail))
    lang = settings_of(ctx).language
    if send_mail and not mailed:
        click.echo(t(lang, "Pas de mail : l'expéditeur n'a pas d'adresse ou écrit automatiquement."), err=True)


@triage.command("merge")
@click.argument("submission_id", type=int)
@click.option("--into", "commons_id", type=int, required=True, help="The existing commons' id.")
@click.pass_context
def triage_merge(ctx: click.Context, submission_id: int, commons_id: int) -> None:
    """Merge a submission into an existing commons (its text goes to the commons' history)."""
    from commons_sync.service.triage import merge

    _run(ctx, lambda svc, settings: merge(svc, submission_id, commons_id))


@triage.command("retry-topic")
@click.argument("submission_id", type=int)
@click.pass_context
def triage_retry_topic(ctx: click.Context, submission_id: int) -> None:
    """After checking the forum has no topic for this accepted submission, create it again.

    Only for a creation whose answer was lost and whose topic never got linked.
    """
    from commons_sync.service.triage import retry_topic_creation

    if not _run(ctx, lambda svc, settings: retry_topic_creation(svc, submission_id)):
        raise Failure(t(settings_of(ctx).language, "il n'y a pas de création de sujet à relancer pour "
                                                 "la proposition {id}", id=submission_id))


@triage.command("spam")
@click.argument("submission_id", type=int)
@click.pass_context
def triage_spam(ctx: click.Context, submission_id: int) -> None:
    """Mark a submission as spam."""
    from commons_sync.service.triage import mark_spam

    _run(ctx, lambda svc, settings: mark_spam(svc, submission_id))


@click.group("mail")
def mail() -> None:
    """Boîte aux lettres des propositions / the proposals' mailbox."""


@mail.command("poll")
@click.pass_context
def mail_poll(ctx: click.Context) -> None:
    """Read the mailbox once: each new message becomes a submission, then goes to the done folder."""
    from commons_sync.mail.imap import Mailbox
    from commons_sync.service.triage import TriageSettings, poll_mailbox

    settings = settings_of(ctx)
    lang = settings.language
    if not settings.adapter_on("imap"):
        raise Failure(t(lang, "la boîte aux lettres n'est pas configurée (COMMONS_SYNC_IMAP_HOST…)"))
    summary = _run(ctx, lambda svc, s: poll_mailbox(svc, Mailbox.from_settings(s),
                                                    TriageSettings.from_settings(s)))
    for received in summary.received:
        click.echo(f"{received.reference}\t{received.parsed.subject}")
    click.echo(t(lang, "{new} nouvelles propositions, {duplicates} déjà connues, {moved} messages "
                       "rangés.", new=summary.new, duplicates=summary.duplicates, moved=summary.moved),
               err=True)
