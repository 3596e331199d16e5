"""Mail intake against a real Dovecot and an aiosmtpd sink: submissions, acknowledgements, crashes."""

from __future__ import annotations

import pytest

from commons_sync.mail.imap import Mailbox
from commons_sync.service import triage

from .conftest import PROGRAM_ADDRESS, eml, proposal


def test_french_multipart_mail_becomes_one_submission_with_attachment_and_french_acknowledgement(harness):
    harness.deliver(eml("proposition_multipart_fr"))

    summary = harness.poll()
    harness.settle()

    assert summary.new == 1 and summary.moved == 1
    [item] = triage.list_submissions(harness.svc)
    shown = triage.show_submission(harness.svc, item["id"])
    assert shown["sender_name"] == "Renée Dupré"
    assert shown["subject"].startswith("Proposition de commun : un four à pain mobile")
    assert "four à pain mobile" in shown["text"]
    [attachment] = shown["attachments"]
    assert attachment["filename"] == "Devis équipement boulangerie – Tiers-lieu des Crêtes.pdf"
    assert attachment["content_type"] == "application/pdf" and not attachment["too_large"]
    filename, _type, data = triage.attachment_data(harness.svc, item["id"], 0)
    assert data.startswith(b"%PDF") and len(data) == attachment["size"]
    [ack] = harness.mails_to("renee.dupre@cretes.example")
    message = ack.message
    assert item["reference"] in message["Subject"]
    assert message["Subject"].startswith("Proposition reçue (référence ")
    assert message["Content-Language"] == "fr"
    assert f"référence {item['reference']}" in message.get_content()
    assert message["In-Reply-To"] == "<4f1c2a7e-8d3b-4c55-9a61-0b2f3e5d7c10@cretes.example>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert ack.mail_from == PROGRAM_ADDRESS
    with harness.dovecot.client() as client:
        client.select_folder("INBOX")
        assert client.search(["ALL"]) == []
        client.select_folder("Traité")
        assert len(client.search(["ALL"])) == 1


def test_html_only_mail_is_read_as_text(harness):
    harness.deliver(eml("proposition_html_only"))

    harness.poll()

    [item] = triage.list_submissions(harness.svc)
    shown = triage.show_submission(harness.svc, item["id"])
    assert shown["subject"] == "Grainothèque partagée"
    assert shown["sender_name"] == "Martin, Paul"
    assert "<" not in shown["text"] and "grainoth" in shown["text"].lower()
    assert not shown["malformed"]


def test_malformed_mail_is_kept_with_its_raw_source(harness):
    raw = eml("malformed_broken_multipart")
    harness.deliver(raw)

    summary = harness.poll()

    assert summary.new == 1 and summary.malformed == 1
    [item] = triage.list_submissions(harness.svc)
    shown = triage.show_submission(harness.svc, item["id"])
    assert shown["malformed"] and shown["malformed_reason"] == "broken-structure"
    assert shown["raw"] == raw.decode("utf-8", errors="replace")
    assert shown["malformed_description"]


@pytest.mark.parametrize("name", ["auto_reply_vacation", "bounce", "list_mail"])
def test_automatic_mail_is_stored_but_never_acknowledged(harness, name):
    harness.deliver(eml(name))

    harness.poll()
    harness.settle()

    [item] = triage.list_submissions(harness.svc)
    shown = triage.show_submission(harness.svc, item["id"])
    assert shown["automatic"] and not shown["acknowledged"]
    assert harness.sink.messages == []


def test_a_sender_gets_at_most_three_acknowledgements_a_day(harness):
    for number in range(4):
        harness.deliver(proposal(f"Proposition numéro {number} pour le réseau", "Texte de la proposition."))

    harness.poll()
    harness.settle()

    assert len(triage.list_submissions(harness.svc)) == 4
    assert len(harness.mails_to("renee@cretes.example")) == 3


class _KilledAfterStoring:
    """A store that stops the poll right after the submission's commit, before the move."""

    def __init__(self, store):
        self.store = store

    def __getattr__(self, name):
        return getattr(self.store, name)

    def add_submission(self, parsed, uidvalidity, uid):
        self.store.add_submission(parsed, uidvalidity, uid)
        raise KeyboardInterrupt("poller killed")


def test_poll_killed_between_storing_and_moving_makes_one_submission_and_one_acknowledgement(harness):
    harness.deliver(eml("proposition_multipart_fr"))
    store = triage.SqlMailboxStore(harness.svc, triage.TriageSettings.from_settings(harness.settings))

    with pytest.raises(KeyboardInterrupt):
        harness.mailbox.poll(_KilledAfterStoring(store))
    with harness.dovecot.client() as client:
        client.select_folder("INBOX")
        assert len(client.search(["ALL"])) == 1  # stored, not moved
    summary = harness.poll()
    harness.settle()

    assert summary.new == 0 and summary.duplicates == 1 and summary.moved == 1
    assert len(triage.list_submissions(harness.svc)) == 1
    assert len(harness.mails_to("renee.dupre@cretes.example")) == 1


@pytest.mark.parametrize("name", ["proposition_multipart_fr", "no_message_id"])
def test_uidvalidity_change_makes_no_duplicates(harness, name):
    harness.deliver(eml(name))
    store = triage.SqlMailboxStore(harness.svc, triage.TriageSettings.from_settings(harness.settings))
    with pytest.raises(KeyboardInterrupt):
        harness.mailbox.poll(_KilledAfterStoring(store))
    before = harness.dovecot.uidvalidity()

    harness.dovecot.reset_uidvalidity()
    mailbox = Mailbox(**harness.dovecot.mailbox_kwargs())  # the server came back on the same port
    summary = triage.poll_mailbox(harness.svc, mailbox)

    assert harness.dovecot.uidvalidity() != before
    assert summary.new == 0 and summary.duplicates == 1
    assert len(triage.list_submissions(harness.svc)) == 1
    assert store.get_state("INBOX")[0] == harness.dovecot.uidvalidity()


def test_the_acknowledgement_quotes_a_subject_with_encoded_words_readably(harness):
    harness.deliver(proposal("Créer « une ressourcerie » partagée à Saint-Étienne", "Bonjour, voici notre idée."))

    harness.poll()
    harness.settle()

    [ack] = harness.mails_to("renee@cretes.example")
    assert "« Créer « une ressourcerie » partagée à Saint-Étienne »" in ack.message.get_content()
    subject_line = next(line for line in ack.raw.split(b"\n") if line.lower().startswith(b"subject:"))
    assert b"=?utf-8?" in subject_line.lower()  # encoded words on the wire, decoded above
