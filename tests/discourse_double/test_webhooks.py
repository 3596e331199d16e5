"""Webhook deliveries look like Discourse's: signed bodies with the samples' keys, retries, disorder."""

from __future__ import annotations

import json

import pytest
import requests

from commons_sync.devtools.discourse_double import ControlError, DoubleConfig, RunningDouble, sign

from .conftest import SAMPLES, WEBHOOK_SECRET

SAMPLE_NAMES = ["ping", "post_created", "post_edited", "post_destroyed", "post_destroyed_by_author",
                "topic_created"]


def _sample(name):
    body = (SAMPLES / f"{name}.json").read_bytes()
    headers = json.loads((SAMPLES / f"{name}.headers.json").read_text(encoding="utf-8"))
    return body, headers


def _keys(name):
    body, _ = _sample(name)
    outer = json.loads(body)
    (payload,) = outer.values()
    return list(payload)


def _delivered(forum, receiver):
    assert forum.admin.wait_for_webhooks(10)
    return receiver


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_sample_signature_verifies_with_the_double_signing(name):
    body, headers = _sample(name)
    assert int(headers["Content-Length"]) == len(body)
    assert sign("test-secret", body) == headers["X-Discourse-Event-Signature"]


def test_every_delivery_is_signed_with_the_samples_headers(forum, receiver):
    _delivered(forum, receiver)
    _, sample_headers = _sample("post_created")
    assert len(receiver.deliveries) == 3
    for delivery in receiver.deliveries:
        headers, body = delivery["headers"], delivery["body"]
        assert set(sample_headers) <= set(headers)
        assert headers["X-Discourse-Event-Signature"] == sign(WEBHOOK_SECRET, body)
        assert headers["Content-Length"] == str(len(body))
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"] == sample_headers["User-Agent"]
        assert headers["X-Discourse-Instance"] == forum.url
        assert not body.endswith(b"\n") and b": " not in body[:20]
    ids = [int(delivery["headers"]["X-Discourse-Event-Id"]) for delivery in receiver.deliveries]
    assert len(set(ids)) == len(ids)


def test_topic_creation_sends_topic_created_then_post_created_with_sample_keys(forum, receiver):
    _delivered(forum, receiver)
    assert receiver.events() == [("group_user", "user_added_to_group"), ("topic", "topic_created"),
                                 ("post", "post_created")]
    (topic,) = receiver.payloads("topic_created")
    assert list(topic["topic"]) == _keys("topic_created")
    (post,) = receiver.payloads("post_created")
    assert list(post["post"]) == _keys("post_created")
    assert post["post"]["post_number"] == 1 and post["post"]["topic_id"] == forum.topic_id
    assert post["post"]["raw"] == "Présentation du projet de découpeuse laser partagée."


def test_edit_sends_post_edited_with_sample_keys_and_new_version(forum, receiver):
    reply = forum.admin.create_post("yannick.morel", forum.topic_id, "Nous nous engageons : /soutien 150")
    forum.admin.edit_post("yannick.morel", reply["id"], "Nous nous engageons : /soutien 200", "montant revu")
    _delivered(forum, receiver)
    (edited,) = receiver.payloads("post_edited")
    assert list(edited["post"]) == _keys("post_edited")
    assert edited["post"]["version"] == 2
    assert edited["post"]["raw"] == "Nous nous engageons : /soutien 200"
    assert edited["post"]["edit_reason"] == "montant revu"


def test_api_user_edit_comes_back_as_post_edited(forum, receiver):
    created = requests.post(f"{forum.url}/posts.json", headers=forum.api_headers(), timeout=10,
                            json={"topic_id": forum.topic_id, "raw": "Statut du commun : 0 € collectés."}).json()
    requests.put(f"{forum.url}/posts/{created['id']}.json", headers=forum.api_headers(), timeout=10,
                 json={"post": {"raw": "Statut du commun : 150 € collectés."}})
    _delivered(forum, receiver)
    (edited,) = receiver.payloads("post_edited")
    assert edited["post"]["username"] == forum.api_username
    assert edited["post"]["version"] == 2


def test_author_deletion_sends_post_edited_then_post_destroyed_and_recovery_reverses(forum, receiver):
    reply = forum.admin.create_post("yannick.morel", forum.topic_id, "Nous nous engageons : /soutien 150")
    forum.admin.delete_post("yannick.morel", reply["id"])
    _delivered(forum, receiver)
    assert receiver.events()[-2:] == [("post", "post_edited"), ("post", "post_destroyed")]
    edited = receiver.payloads("post_edited")[-1]["post"]
    destroyed = receiver.payloads("post_destroyed")[-1]["post"]
    assert edited["raw"] == "(message supprimé par son auteur)"
    assert destroyed["raw"] == "(message supprimé par son auteur)"
    assert destroyed["deleted_at"] is None and destroyed["user_deleted"] is True
    assert destroyed["version"] == edited["version"] == 2
    assert list(destroyed) == _keys("post_destroyed_by_author")

    forum.admin.recover_post("yannick.morel", reply["id"])
    _delivered(forum, receiver)
    assert receiver.events()[-2:] == [("post", "post_edited"), ("post", "post_recovered")]
    restored = receiver.payloads("post_edited")[-1]["post"]
    recovered = receiver.payloads("post_recovered")[-1]["post"]
    assert restored["raw"] == "Nous nous engageons : /soutien 150"
    assert recovered["user_deleted"] is False and recovered["version"] == 3


def test_staff_deletion_sets_deleted_at_and_deleted_by(forum, receiver):
    reply = forum.admin.create_post("yannick.morel", forum.topic_id, "Doublon : /soutien 80 sur la découpeuse")
    forum.admin.delete_post("claire.moderation", reply["id"])
    _delivered(forum, receiver)
    (destroyed,) = receiver.payloads("post_destroyed")
    assert list(destroyed["post"]) == _keys("post_destroyed")
    assert destroyed["post"]["deleted_at"] is not None
    assert destroyed["post"]["deleted_by"]["username"] == "claire.moderation"
    assert destroyed["post"]["user_deleted"] is False

    forum.admin.recover_post("claire.moderation", reply["id"])
    _delivered(forum, receiver)
    (recovered,) = receiver.payloads("post_recovered")
    assert recovered["post"]["deleted_at"] is None and "deleted_by" not in recovered["post"]


def test_non_author_non_staff_cannot_delete(forum):
    forum.admin.create_user("intrus", name="Intrus")
    reply = forum.admin.create_post("yannick.morel", forum.topic_id, "Un message que seul son auteur supprime.")
    with pytest.raises(ControlError) as error:
        forum.admin.delete_post("intrus", reply["id"])
    assert error.value.status == 403
    assert forum.admin.post(reply["id"])["user_deleted"] is False


def test_group_membership_changes_send_group_user_events(forum, receiver):
    forum.admin.create_user("alice", name="Alice")
    forum.admin.add_to_group("la-ruche", "alice")
    forum.admin.remove_from_group("la-ruche", "alice")
    _delivered(forum, receiver)
    assert receiver.events()[-2:] == [("group_user", "user_added_to_group"),
                                      ("group_user", "user_removed_from_group")]
    added, removed = (json.loads(item["body"])["group_user"] for item in receiver.deliveries[-2:])
    alice = forum.admin.user("alice")
    assert added["user_id"] == removed["user_id"] == alice["id"]
    assert "la-ruche" not in alice["groups"]


def test_topic_changes_send_topic_edited(forum, receiver):
    forum.admin.edit_topic("yannick.morel", forum.topic_id, title="Découpeuse laser mutualisée, nouveau titre")
    forum.admin.edit_topic("claire.moderation", forum.topic_id, closed=True)
    _delivered(forum, receiver)
    assert receiver.events()[-3:] == [("topic", "topic_edited"), ("post", "post_created"),
                                      ("topic", "topic_closed_status_updated")]
    assert receiver.payloads("topic_edited")[0]["topic"]["title"] == "Découpeuse laser mutualisée, nouveau titre"
    small_action = receiver.payloads("post_created")[-1]["post"]
    assert small_action["post_type"] == 3 and small_action["action_code"] == "closed.enabled"
    assert receiver.payloads("topic_closed_status_updated")[0]["topic"]["closed"] is True


def test_ping_sends_the_ping_body(forum, receiver):
    _delivered(forum, receiver)
    event_id = forum.admin.ping()
    _delivered(forum, receiver)
    body, headers = _sample("ping")
    delivery = receiver.deliveries[-1]
    assert delivery["body"] == body
    assert delivery["headers"]["X-Discourse-Event-Type"] == delivery["headers"]["X-Discourse-Event"] == "ping"
    assert delivery["headers"]["X-Discourse-Event-Id"] == str(event_id)
    assert delivery["headers"]["X-Discourse-Event-Signature"] == sign(WEBHOOK_SECRET, body)


def test_whisper_is_sent_with_post_type_4_and_hidden_from_non_staff(forum, receiver):
    whisper = forum.admin.create_post("claire.moderation", forum.topic_id, "Note interne au personnel du réseau.",
                                      whisper=True)
    _delivered(forum, receiver)
    assert receiver.payloads("post_created")[-1]["post"]["post_type"] == 4
    as_member = requests.get(f"{forum.url}/t/{forum.topic_id}.json", headers=forum.api_headers("yannick.morel"),
                             timeout=10).json()
    as_staff = requests.get(f"{forum.url}/t/{forum.topic_id}.json", headers=forum.api_headers(), timeout=10).json()
    assert whisper["id"] not in as_member["post_stream"]["stream"]
    assert whisper["id"] in as_staff["post_stream"]["stream"]
    with pytest.raises(ControlError):
        forum.admin.create_post("yannick.morel", forum.topic_id, "Un membre ne peut pas chuchoter.", whisper=True)


def test_non_2xx_answer_is_retried_with_a_new_event_id_and_same_body(forum, receiver):
    _delivered(forum, receiver)
    receiver.statuses.extend([500, 503])
    forum.admin.create_post("yannick.morel", forum.topic_id, "Une réponse qui sera redélivrée.")
    _delivered(forum, receiver)
    first, second, third = receiver.deliveries[-3:]
    assert [first["status"], second["status"], third["status"]] == [500, 503, 200]
    ids = [item["headers"]["X-Discourse-Event-Id"] for item in (first, second, third)]
    assert len(set(ids)) == 3
    assert first["body"] == second["body"] == third["body"]
    log = forum.admin.webhook_log()["deliveries"]
    assert log[-1]["retry_of"] == int(ids[0]) and log[-1]["attempt"] == 2


def test_retries_stop_after_the_configured_delays(forum, receiver):
    _delivered(forum, receiver)
    receiver.statuses.extend([500, 500, 500, 500])
    forum.admin.create_post("yannick.morel", forum.topic_id, "Une réponse jamais acceptée.")
    _delivered(forum, receiver)
    assert [item["status"] for item in receiver.deliveries[3:]] == [500, 500, 500]


def test_duplicates_carry_the_same_event_id(forum, receiver):
    _delivered(forum, receiver)
    forum.admin.set_webhook_options(duplicates=1)
    forum.admin.create_post("yannick.morel", forum.topic_id, "Une réponse livrée deux fois.")
    _delivered(forum, receiver)
    first, second = receiver.deliveries[-2:]
    assert first["headers"]["X-Discourse-Event-Id"] == second["headers"]["X-Discourse-Event-Id"]
    assert first["body"] == second["body"]


def test_reorder_window_delivers_in_reverse_order(forum, receiver):
    _delivered(forum, receiver)
    forum.admin.set_webhook_options(reorder_window=0.5)
    forum.admin.create_topic("yannick.morel", "Un second sujet pour tester l'ordre", "Le premier message du sujet.")
    _delivered(forum, receiver)
    assert receiver.events()[-2:] == [("post", "post_created"), ("topic", "topic_created")]
    ids = [int(item["headers"]["X-Discourse-Event-Id"]) for item in receiver.deliveries[-2:]]
    assert ids[0] > ids[1]


def test_delayed_deliveries_stay_pending(forum, receiver):
    _delivered(forum, receiver)
    forum.admin.set_webhook_options(delay=60)
    forum.admin.create_post("yannick.morel", forum.topic_id, "Une réponse livrée dans une minute.")
    assert forum.admin.wait_for_webhooks(0.2) is False
    log = forum.admin.webhook_log()
    assert log["pending"] == 1
    assert log["events"][-1]["event_name"] == "post_created"
    assert len(receiver.deliveries) == 3


def test_paused_deliveries_wait_until_resumed(forum, receiver):
    _delivered(forum, receiver)
    forum.admin.set_webhook_options(paused=True)
    forum.admin.create_post("yannick.morel", forum.topic_id, "Une réponse retenue un moment.")
    assert forum.admin.wait_for_webhooks(0.3) is False
    assert len(receiver.deliveries) == 3
    forum.admin.set_webhook_options(paused=False)
    _delivered(forum, receiver)
    assert receiver.events()[-1] == ("post", "post_created")
    assert len(receiver.deliveries) == 4


def test_editing_grace_period_keeps_the_version_of_quick_author_edits(receiver):
    config = DoubleConfig(webhook_url=receiver.url, webhook_secret=WEBHOOK_SECRET, editing_grace_period=300)
    with RunningDouble(config) as double:
        double.admin.create_user("alice", name="Alice")
        topic = double.admin.create_topic("alice", "Un sujet pour les modifications", "Premier message du sujet.")
        edited = double.admin.edit_post("alice", topic["post_id"], "Premier message du sujet, corrigé.")
        assert edited["version"] == 1
        with_reason = double.admin.edit_post("alice", topic["post_id"], "Premier message, corrigé encore.", "raison")
        assert with_reason["version"] == 2
