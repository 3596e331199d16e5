"""Bugs the fuzzers found, each kept as a plain example so it cannot come back unnoticed."""

from __future__ import annotations

import pytest

from commons_sync.engine.errors import AmountError
from commons_sync.engine.money import parse_amount
from commons_sync.mail.messages import acknowledgement, parse_message
from commons_sync.mediawiki.fiche import RESULTS_END, RESULTS_START, replace_results_block

from . import fuzz_targets


@pytest.mark.parametrize("typed", ["9" * 4301, "1 " + "000 " * 1500 + "000", "0" * 5000 + "1" * 4400])
def test_an_amount_of_thousands_of_digits_is_refused_as_too_large_not_a_crash(typed):
    with pytest.raises(AmountError) as refused:
        parse_amount(typed)
    assert refused.value.code == "amount_too_large"


def test_leading_zeros_still_read():
    assert parse_amount("0" * 30 + "50") == 5000


def test_a_lone_start_marker_a_person_wrote_survives_every_sync():
    page = f"Intro.\n{RESULTS_START}\nTexte écrit par une personne.\n"
    first = replace_results_block(page, "== Financé ==")
    second = replace_results_block(first, "== Financé ==\n* [[A|A]]")
    assert first.startswith(page.rstrip("\n"))
    assert second.startswith(page.rstrip("\n"))
    assert second.endswith(f"{RESULTS_START}\n== Financé ==\n* [[A|A]]\n{RESULTS_END}\n")


def test_a_lone_end_marker_before_the_block_is_left_and_the_block_replaced_in_place():
    page = f"{RESULTS_END}\nNote.\n\n{RESULTS_START}\nancien\n{RESULTS_END}\nFin.\n"
    assert replace_results_block(page, "neuf") == f"{RESULTS_END}\nNote.\n\n{RESULTS_START}\nneuf\n{RESULTS_END}\nFin.\n"


@pytest.mark.parametrize("address", [b"jean@\x80ieux.example", b"\x80ean@vieux.example", b"\x00ean@vieux.example"])
def test_a_sender_address_no_answer_can_be_addressed_to_is_no_sender(address):
    raw = (b"From: Jean <" + address + b">\r\nTo: communs@reseau.example\r\nSubject: Proposition\r\n"
           b"Message-ID: <a@b>\r\n\r\nUne proposition.\r\n")
    parsed = parse_message(raw)
    assert parsed.malformed and parsed.malformed_reason == "no-sender"
    assert parsed.reply_address is None


def test_a_plain_sender_is_still_answered():
    raw = (b"From: =?utf-8?q?Ren=C3=A9e?= <renee@cretes.example>\r\nTo: communs@reseau.example\r\n"
           b"Subject: Proposition\r\nMessage-ID: <a@b>\r\n\r\nUne proposition.\r\n")
    parsed = parse_message(raw)
    mail = acknowledgement(parsed, 42, "fr", from_addr="propositions@reseau.example")
    assert mail["To"].addresses[0].addr_spec == "renee@cretes.example"


def _post(post_id: int, username: str, raw: str, version: int = 1):
    from commons_sync.discourse.events import PostSnapshot

    return PostSnapshot(post_id=post_id, topic_id=fuzz_targets.COMMONS_TOPIC, post_number=post_id + 1,
                        username=username, user_id=None, name=None, version=version, raw=raw, cooked=None,
                        deleted_at=None, user_deleted=False, post_type=1, topic_archetype="regular",
                        category_id=None, reply_to_post_number=1, staff=False, admin=False,
                        moderator=False, created_at=None, updated_at=None)


@pytest.mark.parametrize("username,raw", [("zoe", "/soutien 5"), ("zoe", "/soutien 0"), ("alice", "/soutien 1,234")])
def test_a_refused_pledge_of_someone_without_an_account_credits_no_allocation(tmp_path, username, raw):
    from commons_sync.service import handlers

    with fuzz_targets.forum_service(tmp_path, allocation_cents=50000) as (svc, _config, applier, _forum):
        applier.apply_snapshot(_post(1, username, raw))
        assert fuzz_targets.ledger_rows(svc) == 0
        assert handlers.show_round(svc, "printemps")["members"] == []
        # a member's valid pledge afterwards is credited and accepted as before
        applier.apply_snapshot(_post(2, "alice", "/soutien 10"))
        members = handlers.show_round(svc, "printemps")["members"]
        assert [(m["username"], m["balance"]) for m in members] == [("alice", 490)]
        assert handlers.verify_ledger(svc) == []


@pytest.mark.parametrize("event_id", ["²", "٣٤", "1" * 5000, "１２"])
def test_an_event_id_of_non_ascii_or_thousands_of_digits_is_answered_400_not_500(forum, event_id):
    from commons_sync.web.app import create_app

    svc, settings, _applier, _double = forum
    headers, body = fuzz_targets.recorded_deliveries()["post_created__pledge"]
    headers = dict(headers, **{"X-Discourse-Event-Id": event_id,
                               "X-Discourse-Event-Signature": fuzz_targets.sign(body)})
    answer = create_app(settings, svc).test_client().post("/webhooks/discourse", data=body, headers=headers)
    assert answer.status_code == 400
    assert fuzz_targets.deliveries(svc) == 0


@pytest.mark.parametrize("subject,name", [(b"=?x?Q?=C3=A0?= caf\xc3\xa9", b"Ren\xc3\xa9e"),
                                          (b"Proposition", b"=?bogus?q?=C3?= Ren\xc3\xa9e"),
                                          (b"=?\x00TF-8?Q?four_=C3=A0_pain?= ag\xc3\xa9", b"Jean")])
def test_a_subject_or_name_with_an_encoded_word_look_alike_can_still_be_answered(subject, name):
    raw = (b"From: " + name + b" <renee@cretes.example>\r\nTo: communs@reseau.example\r\nSubject: " + subject
           + b"\r\nMessage-ID: <a@b>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nUne proposition.\r\n")
    mail = acknowledgement(parse_message(raw), 42, "fr", from_addr="propositions@reseau.example")
    written = mail.as_bytes()  # raised UnicodeEncodeError (surrogates) before the fix
    assert b"renee@cretes.example" in written and b"42" in written
