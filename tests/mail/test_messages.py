"""Reading incoming mail and building outgoing mail, on the .eml fixtures (no server needed)."""

from __future__ import annotations

import email
from datetime import datetime, timedelta, timezone
from email.policy import default as default_policy

from hypothesis import given, settings, strategies as st

from commons_sync.mail.messages import (
    ParsedMessage, accepted_mail, acknowledgement, describe_malformed, is_automatic, parse_message,
    rejected_mail,
)
from tests.mail.conftest import fixture_bytes

PDF_NAME = "Devis équipement boulangerie – Tiers-lieu des Crêtes.pdf"


def test_french_multipart_mail_is_decoded():
    parsed = parse_message(fixture_bytes("proposition_multipart_fr"))

    assert not parsed.malformed
    assert parsed.message_id == "<4f1c2a7e-8d3b-4c55-9a61-0b2f3e5d7c10@cretes.example>"
    assert parsed.sender_address == "renee.dupre@cretes.example"
    assert parsed.sender_name == "Renée Dupré"
    assert parsed.subject == ("Proposition de commun : un four à pain mobile partagé entre les "
                              "tiers-lieux")
    assert parsed.date == datetime(2026, 11, 17, 9, 42, 13, tzinfo=timezone(timedelta(hours=1)))
    assert parsed.date.utcoffset() == timedelta(hours=1)
    assert parsed.text.startswith("Bonjour à toute l'équipe,\n\nAu nom du tiers-lieu des Crêtes")
    assert "ateliers « pain au levain » et des marchés paysans." in parsed.text
    assert "Coût estimé : 4 800 € (four" in parsed.text
    assert parsed.text.endswith("Coordinatrice — Tiers-lieu des Crêtes")
    assert "=C3" not in parsed.text and "\r" not in parsed.text


def test_attachment_with_rfc2231_name_is_kept_with_its_data():
    parsed = parse_message(fixture_bytes("proposition_multipart_fr"))

    [attachment] = parsed.attachments
    assert attachment.filename == PDF_NAME
    assert attachment.content_type == "application/pdf"
    assert attachment.data.startswith(b"%PDF-1.4\n")
    assert attachment.size == len(attachment.data) == 108
    assert not attachment.too_large


def test_attachment_over_the_limit_keeps_name_and_size_but_no_data():
    parsed = parse_message(fixture_bytes("proposition_multipart_fr"), max_attachment_bytes=100)

    [attachment] = parsed.attachments
    assert attachment.filename == PDF_NAME
    assert attachment.size == 108
    assert attachment.data is None and attachment.too_large


def test_html_only_mail_becomes_readable_text():
    parsed = parse_message(fixture_bytes("proposition_html_only"))

    assert not parsed.malformed
    assert parsed.subject == "Grainothèque partagée"
    assert parsed.sender_name == "Martin, Paul"
    assert parsed.text == (
        "Bonjour,\n\n"
        "Nous proposons une grainothèque commune aux lieux du réseau\xa0:\n\n"
        "- des boîtes de semences dans chaque lieu,\n"
        "- un inventaire partagé sur le wiki.\n\n"
        "Plus de détails sur notre page (https://jardins.example/grainotheque).\n\n"
        "Cordialement,\nPaul Martin"
    )
    assert parsed.attachments == ()


def test_malformed_mail_is_kept_flagged_with_its_raw_source():
    raw = fixture_bytes("malformed_broken_multipart")
    parsed = parse_message(raw)

    assert parsed.malformed
    assert parsed.malformed_reason == "broken-structure"
    assert parsed.raw == raw
    assert parsed.sender_address == "atelier@coin.example"
    assert parsed.subject == "Proposition : atelier vélo"
    assert parsed.date is None  # "25:99:00" is no time of day
    assert parsed.text.startswith("Bonjour, nous proposons un atelier vélo partagé")
    assert describe_malformed(parsed.malformed_reason, "fr").startswith("La structure du message")


def test_garbage_and_empty_input_are_flagged_not_raised():
    garbage = b"\x00\xff\xfe not a mail at all\r\n\x80\x81"
    parsed = parse_message(garbage)
    assert parsed.malformed and parsed.malformed_reason == "no-sender"
    assert parsed.raw == garbage

    empty = parse_message(b"")
    assert empty.malformed and empty.malformed_reason == "empty"


def test_mail_without_message_id_has_none():
    parsed = parse_message(fixture_bytes("no_message_id"))
    assert parsed.message_id is None
    assert not parsed.malformed


def test_raw_utf8_headers_are_decoded():
    raw = ("From: Équipe Réseau <equipe@reseau.example>\r\nSubject: Café partagé\r\n"
           "Message-ID: <x@y>\r\n\r\ncorps\r\n").encode("utf-8")
    parsed = parse_message(raw)
    assert parsed.sender_name == "Équipe Réseau"
    assert parsed.subject == "Café partagé"


def test_attachment_names_lose_their_path():
    message = email.message.EmailMessage()
    message["From"] = "a@example.org"
    message.set_content("voir pièce jointe")
    message.add_attachment(b"data", maintype="application", subtype="octet-stream",
                           filename="../../etc/passwd")
    [attachment] = parse_message(message.as_bytes()).attachments
    assert attachment.filename == "passwd"


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_never_raises_on_random_bytes(raw):
    parsed = parse_message(raw)
    assert isinstance(parsed, ParsedMessage)
    assert parsed.raw == raw


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=1846), st.binary(min_size=1, max_size=40))
def test_parse_never_raises_on_damaged_fixture(position, noise):
    raw = fixture_bytes("proposition_multipart_fr")
    damaged = raw[:position] + noise + raw[position + len(noise):]
    parsed = parse_message(damaged)
    assert parsed.raw == damaged
    assert parsed.malformed or parsed.sender_address


# -- automatic mail ---------------------------------------------------------------------------------


def test_auto_reply_is_automatic():
    parsed = parse_message(fixture_bytes("auto_reply_vacation"))
    assert parsed.subject == "Réponse automatique : absence"
    assert parsed.headers["auto-submitted"] == "auto-replied (vacation)"
    assert is_automatic(parsed)


def test_list_mail_is_automatic():
    parsed = parse_message(fixture_bytes("list_mail"))
    assert parsed.sender_name == "Lettre du réseau"
    assert parsed.headers["list-id"] == "Lettre du reseau <reseau.listes.example>"
    assert is_automatic(parsed)


def test_bounce_is_automatic_and_keeps_its_report():
    parsed = parse_message(fixture_bytes("bounce"))
    assert is_automatic(parsed)
    [report] = parsed.attachments
    assert report.content_type == "message/delivery-status"
    assert b"Status: 5.1.1" in report.data


def test_proposals_from_people_are_not_automatic():
    assert not is_automatic(parse_message(fixture_bytes("proposition_multipart_fr")))
    assert not is_automatic(parse_message(fixture_bytes("proposition_html_only")))


def _with_headers(*lines: str, sender: str = "Alice <alice@example.org>") -> ParsedMessage:
    raw = "\r\n".join([f"From: {sender}", "Message-ID: <m@example.org>", *lines, "", "texte"])
    return parse_message(raw.encode())


def test_each_automatic_marker_is_recognised():
    assert is_automatic(_with_headers("Auto-Submitted: auto-generated"))
    assert not is_automatic(_with_headers("Auto-Submitted: no"))
    assert not is_automatic(_with_headers("Auto-Submitted: No (comment)"))
    for value in ("bulk", "list", "junk", "Bulk"):
        assert is_automatic(_with_headers(f"Precedence: {value}"))
    assert not is_automatic(_with_headers("Precedence: first-class"))
    assert is_automatic(_with_headers("List-Id: <liste.example.org>"))
    assert is_automatic(_with_headers("X-Autoreply: yes"))
    assert is_automatic(_with_headers("X-Autorespond: yes"))
    assert is_automatic(_with_headers("Return-Path: <>"))
    assert not is_automatic(_with_headers("Return-Path: <alice@example.org>"))
    assert is_automatic(_with_headers(sender="postmaster@example.org"))
    assert is_automatic(_with_headers(sender="MAILER-DAEMON@example.org"))
    assert is_automatic(_with_headers(), own_addresses=("Alice@Example.org",))
    assert not is_automatic(_with_headers())


# -- outgoing mail ----------------------------------------------------------------------------------


def _reparse(message) -> email.message.EmailMessage:
    return email.message_from_bytes(message.as_bytes(), policy=default_policy)


def test_acknowledgement_is_french_threaded_and_auto_submitted():
    parsed = parse_message(fixture_bytes("proposition_multipart_fr"))
    ack = _reparse(acknowledgement(parsed, "42", from_addr="Communs <communs@reseau.example>"))

    assert ack["To"].addresses[0].addr_spec == "renee.dupre@cretes.example"
    assert ack["To"].addresses[0].display_name == "Renée Dupré"
    assert ack["From"].addresses[0].addr_spec == "communs@reseau.example"
    assert ack["Subject"].startswith("Proposition reçue (référence 42) : Proposition de commun")
    assert ack["In-Reply-To"] == parsed.message_id
    assert ack["References"] == parsed.message_id
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["Message-ID"].endswith("@reseau.example>")
    assert ack["Content-Transfer-Encoding"] == "quoted-printable"
    body = ack.get_content()
    assert body.startswith("Bonjour Renée Dupré,\n\n")
    assert "sous la référence 42" in body
    assert "« Proposition de commun : un four à pain mobile" in body


def test_acknowledgement_keeps_the_thread_references():
    raw = (b"From: a@example.org\r\nMessage-ID: <3@x>\r\nReferences: <1@x> <2@x>\r\n"
           b"In-Reply-To: <2@x>\r\nSubject: Re: idee\r\n\r\ntexte\r\n")
    ack = acknowledgement(parse_message(raw), 7, from_addr="communs@reseau.example")
    assert ack["References"] == "<1@x> <2@x> <3@x>"
    assert ack["In-Reply-To"] == "<3@x>"
    assert ack.get_content().startswith("Bonjour,\n\n")  # no display name


def test_acknowledgement_goes_to_reply_to_when_given():
    raw = (b"From: Bob <bob@example.org>\r\nReply-To: projets@example.org\r\nMessage-ID: <r@x>\r\n"
           b"Subject: four\r\n\r\ntexte\r\n")
    ack = acknowledgement(parse_message(raw), 1, from_addr="communs@reseau.example")
    assert ack["To"].addresses[0].addr_spec == "projets@example.org"


def test_acknowledgement_in_english_is_complete():
    parsed = parse_message(fixture_bytes("proposition_html_only"))
    ack = acknowledgement(parsed, "9", "en", from_addr="communs@reseau.example")
    assert ack["Content-Language"] == "en"
    assert ack["Subject"] == "Proposal received (reference 9): Grainothèque partagée"
    body = ack.get_content()
    assert body.startswith("Hello Martin, Paul,\n\n")
    assert "reference 9" in body
    for french in ("Bonjour", "proposition", "référence", "automatiquement"):
        assert french not in body


def test_decision_mails_in_english():
    accepted = accepted_mail(to_addr="a@example.org", to_name=None, subject="Oven", reference="4",
                             link="https://forum.example.org/t/17", from_addr="c@example.org",
                             lang="en")
    rejected = rejected_mail(to_addr="a@example.org", to_name=None, subject="Oven", reference="4",
                             reason="Too late.", from_addr="c@example.org", lang="en")
    for mail in (accepted, rejected):
        assert mail.get_content().startswith("Hello,\n\n")
        assert "Bonjour" not in mail.get_content() and "Proposition" not in mail["Subject"]
    assert "https://forum.example.org/t/17" in accepted.get_content()
    assert "Too late." in rejected.get_content()
    assert describe_malformed("no-sender", "en") == "The message has no valid sender address."


def test_accepted_mail_gives_the_link():
    mail = _reparse(accepted_mail(
        to_addr="renee.dupre@cretes.example", to_name="Renée Dupré", subject="Four à pain",
        reference="42", link="https://forum.example.org/t/four-a-pain/17",
        from_addr="communs@reseau.example", in_reply_to="<orig@cretes.example>"))
    assert mail["Subject"] == "Proposition acceptée : Four à pain"
    assert "https://forum.example.org/t/four-a-pain/17" in mail.get_content()
    assert "(référence 42) a été acceptée" in mail.get_content()
    assert mail["In-Reply-To"] == "<orig@cretes.example>"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Content-Transfer-Encoding"] == "quoted-printable"


def test_rejected_mail_gives_the_reason():
    mail = _reparse(rejected_mail(
        to_addr="paul.martin@jardins.example", to_name=None, subject="Grainothèque",
        reference="43", reason="Un commun semblable existe déjà.",
        from_addr="communs@reseau.example"))
    assert mail["Subject"] == "Proposition non retenue : Grainothèque"
    body = mail.get_content()
    assert body.startswith("Bonjour,\n\n")
    assert "Raison : Un commun semblable existe déjà." in body
    assert mail["In-Reply-To"] is None


def test_text_from_staff_cannot_add_headers():
    mail = _reparse(rejected_mail(
        to_addr="a@example.org", to_name="Eve\r\nBcc: victim@example.org",
        subject="Four\r\nBcc: victim@example.org", reference="1", reason="non",
        from_addr="communs@reseau.example"))
    assert mail["Bcc"] is None
    assert mail["Subject"] == "Proposition non retenue : Four Bcc: victim@example.org"
