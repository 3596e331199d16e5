"""Sending through a real SMTP server (aiosmtpd sink), and the rules that keep mail loops from starting."""

from __future__ import annotations

import pytest

from commons_sync.config import load_settings
from commons_sync.devtools.local_dovecot import free_port
from commons_sync.mail.errors import SmtpUnavailable
from commons_sync.mail.imap import Mailbox
from commons_sync.mail.messages import acknowledgement, parse_message, rejected_mail
from commons_sync.mail.smtp import ACK_DAILY_LIMIT, Mailer, may_acknowledge, should_acknowledge
from tests.mail.conftest import fixture_bytes

BOT = "Communs du réseau <communs@reseau.example>"


def sink_mailer(sink) -> Mailer:
    return Mailer("127.0.0.1", sink.port, "communs@reseau.example", starttls=False)


def test_acknowledgement_reaches_the_sender_in_french_in_the_thread(sink):
    parsed = parse_message(fixture_bytes("proposition_multipart_fr"))

    sink_mailer(sink).send(acknowledgement(parsed, "42", from_addr=BOT))

    [mail] = sink.messages
    assert mail.mail_from == "communs@reseau.example"
    assert mail.rcpt_tos == ("renee.dupre@cretes.example",)
    message = mail.message
    assert message["Subject"] == ("Proposition reçue (référence 42) : Proposition de commun : un four "
                                  "à pain mobile partagé entre les tiers-lieux")
    assert message["In-Reply-To"] == "<4f1c2a7e-8d3b-4c55-9a61-0b2f3e5d7c10@cretes.example>"
    assert message["References"] == "<4f1c2a7e-8d3b-4c55-9a61-0b2f3e5d7c10@cretes.example>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert b"=C3=A9" in mail.raw  # the body travelled quoted-printable, 7-bit clean
    body = message.get_content()
    assert body.startswith("Bonjour Renée Dupré,")
    assert "Elle est enregistrée sous la référence 42" in body


def test_poll_then_acknowledge_only_people(dovecot, sink):
    for name in ("proposition_multipart_fr", "auto_reply_vacation", "list_mail", "bounce",
                 "proposition_html_only"):
        dovecot.deliver(fixture_bytes(name))
    from commons_sync.mail.store import MemoryMailboxStore
    summary = Mailbox(**dovecot.mailbox_kwargs()).poll(MemoryMailboxStore())
    mailer = sink_mailer(sink)

    for received in summary.received:
        if should_acknowledge(received.parsed, sent_today=0, own_addresses=("communs@reseau.example",)):
            mailer.send(acknowledgement(received.parsed, received.reference, from_addr=BOT))

    assert summary.new == 5
    assert sorted(mail.rcpt_tos for mail in sink.messages) == [
        ("paul.martin@jardins.example",), ("renee.dupre@cretes.example",)]


def test_our_own_acknowledgement_coming_back_is_not_answered(sink):
    parsed = parse_message(fixture_bytes("proposition_multipart_fr"))
    sink_mailer(sink).send(acknowledgement(parsed, "42", from_addr=BOT))
    bounced_back = parse_message(sink.messages[0].raw)

    assert not should_acknowledge(bounced_back, sent_today=0)
    assert not should_acknowledge(
        parse_message(b"From: communs@reseau.example\r\nSubject: x\r\n\r\ny"), sent_today=0,
        own_addresses=("communs@reseau.example",))


def test_daily_limit_per_sender():
    parsed = parse_message(fixture_bytes("proposition_multipart_fr"))
    assert ACK_DAILY_LIMIT == 3
    assert [may_acknowledge(n) for n in range(5)] == [True, True, True, False, False]
    assert should_acknowledge(parsed, sent_today=2)
    assert not should_acknowledge(parsed, sent_today=3)
    assert should_acknowledge(parsed, sent_today=3, limit=5)


def test_no_sender_address_is_never_acknowledged():
    parsed = parse_message(b"Subject: sans expediteur\r\n\r\ntexte\r\n")
    assert parsed.malformed
    assert not should_acknowledge(parsed, sent_today=0)


def test_decision_mail_is_sent_to_its_recipient(sink):
    mail = rejected_mail(to_addr="paul.martin@jardins.example", to_name="Paul Martin",
                         subject="Grainothèque", reference="43", reason="Déjà financé ailleurs.",
                         from_addr=BOT)
    sink_mailer(sink).send(mail)
    [received] = sink.messages
    assert received.rcpt_tos == ("paul.martin@jardins.example",)
    assert "Raison : Déjà financé ailleurs." in received.message.get_content()


def test_nobody_listening_is_smtp_unavailable():
    mailer = Mailer("127.0.0.1", free_port(), "communs@reseau.example", starttls=False, timeout=5)
    parsed = parse_message(fixture_bytes("proposition_html_only"))
    with pytest.raises(SmtpUnavailable):
        mailer.send(acknowledgement(parsed, "1", from_addr=BOT))


def test_starttls_refused_by_a_server_without_tls_is_smtp_unavailable(sink):
    mailer = Mailer("127.0.0.1", sink.port, "communs@reseau.example", starttls=True, timeout=5)
    parsed = parse_message(fixture_bytes("proposition_html_only"))
    with pytest.raises(SmtpUnavailable):
        mailer.send(acknowledgement(parsed, "1", from_addr=BOT))
    assert sink.messages == []


def test_mailer_and_mailbox_from_settings():
    settings = load_settings(
        imap_host="imap.example.org", imap_username="communs", imap_password="s3cret",
        imap_ssl=False, smtp_host="smtp.example.org", smtp_from="communs@example.org",
        _env_file=None)
    mailbox = Mailbox.from_settings(settings)
    mailer = Mailer.from_settings(settings)
    assert (mailbox.port, mailbox.ssl, mailbox.done_folder) == (143, False, "Traité")
    assert (mailer.port, mailer.starttls, mailer.username) == (587, True, None)
    assert "s3cret" not in repr(mailbox)
