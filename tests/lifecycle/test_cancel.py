"""Cancelling a commons: pledges released by reversing entries, or moved on agreement; nothing lost."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from commons_sync.engine.model import EntryKind
from commons_sync.service import handlers
from commons_sync.service.cancel import CancelRefused, cancel_commons, cancellation
from commons_sync.service.wiki_sync import fiche_values


def _fiche(forum, commons_id):
    def use_case(uow):
        commons = uow.repo.commons(commons_id)
        names = uow.repo.cofunder_names([commons_id]).get(commons_id, [])
        return fiche_values(commons, uow.repo.round(commons.round_id), names, ZoneInfo("Europe/Paris"))
    return forum.svc.run(use_case)


def _entries(forum, commons_id):
    return [(e.kind, e.username, e.amount_cents, e.note)
            for e in forum.svc.run(lambda uow: uow.repo.entries()) if e.commons_id == commons_id]


def _bot_replies(forum, topic_id, text):
    return [p["raw"] for p in forum.topic_posts(topic_id)
            if p["username"] == forum.forum.api_username and text in (p["raw"] or "")]


def test_cancel_releases_every_pledge_by_reversing_entries_and_tells_each_cofunder(forum):
    topic = forum.commons_topic(goal="1340", cap="1500")
    forum.pledge("alice", topic, "150")
    forum.pledge("bruno", topic, "200")
    forum.settle()
    commons_id = forum.commons(topic)["id"]
    done = cancel_commons(forum.svc, commons_id, "Le projet est abandonné par son porteur.")
    assert done.released == {"alice": 15000, "bruno": 20000}
    forum.settle()
    commons = forum.commons(topic)
    assert (commons["status"], commons["raised"], commons["cofunders"]) == ("annulé", 0, 0)
    assert forum.balance("alice") == 500 and forum.balance("bruno") == 500
    entries = _entries(forum, commons_id)
    assert (EntryKind.PLEDGE, "alice", 15000, None) in entries
    assert (EntryKind.RELEASE, "alice", -15000, f"cancel #{commons_id}") in entries
    assert (EntryKind.RELEASE, "bruno", -20000, f"cancel #{commons_id}") in entries
    assert handlers.verify_ledger(forum.svc) == []
    status = forum.status_post(topic)["raw"]
    assert "nnulé" in status and "**0 €** collectés" in status
    fiche = _fiche(forum, commons_id)
    assert (fiche["statut"], fiche["collecte"], fiche["promesses"], fiche["cofinanceurs"]) == ("annulé", "0", "0", "0")
    notices = _bot_replies(forum, topic, "Ce commun est annulé")
    assert len(notices) == 1
    assert "Raison : Le projet est abandonné par son porteur." in notices[0]
    assert "(@alice, @bruno)" in notices[0]
    # A pledge in the cancelled topic is refused, and a second cancel too.
    forum.pledge("chloe", topic, "50")
    forum.settle()
    assert forum.commons(topic)["raised"] == 0 and forum.balance("chloe") in (None, 500)
    with pytest.raises(CancelRefused):
        cancel_commons(forum.svc, commons_id, "encore")


def test_annuler_in_the_topic_is_for_staff_only(forum):
    topic = forum.commons_topic()
    forum.pledge("alice", topic, "80")
    forum.settle()
    refused = forum.post("bruno", topic, "Je propose d'arrêter.\n\n/annuler plus personne n'en veut")
    forum.settle()
    assert forum.commons(topic)["status"] == "en financement"
    assert any("peuvent annuler un commun" in raw for raw in forum.replies_to(topic, refused["post_number"]))
    staff = forum.post("claire", topic, "Décision du conseil.\n\n/annuler le fournisseur a fermé")
    forum.settle()
    assert forum.commons(topic)["status"] == "annulé"
    assert forum.balance("alice") == 500
    notice = forum.replies_to(topic, staff["post_number"])
    assert len(notice) == 1 and "Raison : le fournisseur a fermé" in notice[0] and "@alice" in notice[0]
    assert cancellation(forum.svc, forum.commons(topic)["id"])["cancelled_by"] == "claire"


def test_redirect_moves_the_pledges_of_those_who_agree_within_cap_and_balance(forum):
    a = forum.commons_topic(goal="1340", cap="1500")
    b = forum.admin.create_topic("bruno", "Un four à pain partagé",
                                 "Proposition : un four à pain mobile pour les fêtes des lieux.")["topic_id"]
    forum.post("claire", b, "Validé par le conseil.\n\n/commun objectif=300")
    forum.settle()
    forum.pledge("alice", a, "150")
    forum.pledge("bruno", a, "200")
    forum.pledge("chloe", a, "100")
    forum.pledge("chloe", b, "50")
    forum.settle()
    a_id, b_id = forum.commons(a)["id"], forum.commons(b)["id"]
    done = cancel_commons(forum.svc, a_id, "Fusionné avec le four à pain.", redirect_to=b_id)
    assert done.agree_until is not None
    forum.settle()
    notice = _bot_replies(forum, a, "Ce commun est annulé")
    assert len(notice) == 1 and "/transferer oui" in notice[0] and "« Un four à pain partagé »" in notice[0]
    assert forum.balance("alice") == 500 and forum.balance("bruno") == 500 and forum.balance("chloe") == 450

    yes = forum.post("alice", a, "D'accord pour reporter.\n\n/transferer oui")
    forum.settle()
    # bruno's 200 € would pass B's cap (300, 200 already): refused, his money stays free.
    late = forum.post("bruno", a, "Moi aussi.\n\n/transferer oui")
    no = forum.post("chloe", a, "Non merci.\n\n/transferer non")
    stranger = forum.post("zoe", a, "Et moi ?\n\n/transferer oui")
    forum.settle()
    b_now = forum.commons(b)
    assert (b_now["pledged"], b_now["cofunder_names"]) == (200, ["alice", "chloe"])
    assert forum.balance("alice") == 350 and forum.balance("bruno") == 500 and forum.balance("chloe") == 450
    assert "reportée sur « Un four à pain partagé »" in forum.replies_to(a, yes["post_number"])[0]
    assert "dépasserait le plafond" in forum.replies_to(a, late["post_number"])[0]
    assert "reste libérée" in forum.replies_to(a, no["post_number"])[0]
    assert "Seuls les cofinanceurs" in forum.replies_to(a, stranger["post_number"])[0]
    assert "**200 €** collectés" in forum.status_post(b)["raw"]
    assert _fiche(forum, b_id)["promesses"] == "200"
    assert (EntryKind.RELEASE, "alice", -15000, f"cancel #{a_id}") in _entries(forum, a_id)
    assert (EntryKind.PLEDGE, "alice", 15000, f"transfer from #{a_id}") in _entries(forum, b_id)
    assert handlers.verify_ledger(forum.svc) == []
    members = {m["username"]: m for m in cancellation(forum.svc, a_id)["members"]}
    assert (members["alice"]["moved_cents"], members["bruno"]["refusal"], members["chloe"]["agreed"]) == (
        15000, "over_cap", False)

    # Editing the agreement post never touches the moved money; a second answer changes nothing.
    forum.admin.edit_post("alice", yes["id"], "Je change d'avis sur le texte, pas sur le report.")
    again = forum.post("alice", a, "Je confirme.\n\n/transferer non")
    forum.settle()
    assert forum.commons(b)["pledged"] == 200 and forum.balance("alice") == 350
    assert "déjà été prise en compte" in forum.replies_to(a, again["post_number"])[0]


def test_redirect_and_reminders_on_postgresql(pg_forum):
    """The same SQL on PostgreSQL: a redirect moves money, a reminder is queued once."""
    from commons_sync.service.reminders import queue_reminders

    test_redirect_moves_the_pledges_of_those_who_agree_within_cap_and_balance(pg_forum)
    label, queued = queue_reminders(pg_forum.svc, "printemps", ["alice", "bruno", "chloe"], max_rpm=50)
    assert label.startswith("manual:") and {p.username for p in queued} == {"alice", "bruno", "chloe"}
    assert queue_reminders(pg_forum.svc, "printemps", ["alice"], max_rpm=50)[1] == []
