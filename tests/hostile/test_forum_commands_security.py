"""Staff forum commands from people who are not staff (nor the referent): nothing changes, a
reply says why. The post's own `staff`/`admin`/`moderator` flags are never trusted: the forum's
group membership (read through the API) decides."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from commons_sync.discourse.events import PostSnapshot
from commons_sync.service import handlers
from commons_sync.storage import tables as tb

from .fuzz_targets import COMMONS_TOPIC, ledger_rows

_ids = iter(range(7000, 8000))


def post(username: str, raw: str, topic_id: int = COMMONS_TOPIC, *, claims_staff: bool = True) -> PostSnapshot:
    post_id = next(_ids)
    return PostSnapshot(post_id=post_id, topic_id=topic_id, post_number=post_id - 6990, username=username,
                        user_id=None, name=username.title(), version=1, raw=raw, cooked=None, deleted_at=None,
                        user_deleted=False, post_type=1, topic_archetype="regular", category_id=None,
                        reply_to_post_number=1, staff=claims_staff, admin=claims_staff,
                        moderator=claims_staff, created_at=None, updated_at=None)


def _commons(svc) -> dict:
    [commons] = [c for c in handlers.list_commons(svc) if c["topic_id"] == COMMONS_TOPIC]
    return handlers.show_commons(svc, commons["id"])


def _replies(svc) -> list[dict]:
    o = tb.outbox
    rows = svc.run(lambda uow: uow.repo.conn.execute(select(o.c.payload).where(o.c.kind == "reply")).all())
    return [json.loads(row.payload) for row in rows]


@pytest.mark.parametrize("username", ["zoe", "alice"])  # not in the forum at all / a member, not staff
def test_commun_by_someone_not_staff_opens_nothing(forum, username):
    svc, _settings, applier, _double = forum
    before = handlers.list_commons(svc)
    applier.apply_snapshot(post(username, "Ouvrons-le !\n\n/commun objectif=100", topic_id=4242),
                           {"topic_title": "Un commun pirate"})
    assert handlers.list_commons(svc) == before
    assert any("/commun" in reply["message"] for reply in _replies(svc))


@pytest.mark.parametrize("username", ["zoe", "alice"])
def test_referent_and_next_step_by_someone_else_change_nothing(forum, username):
    svc, _settings, applier, _double = forum
    before = _commons(svc)
    applier.apply_snapshot(post(username, f"/referent @{username}"))
    applier.apply_snapshot(post(username, "/prochaine-etape tout reverser à zoe"))
    after = _commons(svc)
    assert (after["referent"], after["next_steps"]) == (before["referent"], before["next_steps"])
    refusals = [r["message"] for r in _replies(svc)]
    assert len(refusals) == 2 and all("référent" in message for message in refusals)


def test_staff_may_name_the_referent_who_may_then_steer(forum):
    svc, _settings, applier, _double = forum
    applier.apply_snapshot(post("claire", "/referent @alice", claims_staff=False))
    assert _commons(svc)["referent"] == "alice"
    applier.apply_snapshot(post("alice", "/prochaine-etape signer le devis", claims_staff=False))
    assert _commons(svc)["next_steps"] == "signer le devis"
    applier.apply_snapshot(post("zoe", "/referent @zoe"))  # and someone else still may not
    assert _commons(svc)["referent"] == "alice"


@pytest.mark.parametrize("username", ["zoe", "alice"])
def test_annuler_by_someone_not_staff_cancels_nothing(forum, username):
    svc, _settings, applier, _double = forum
    applier.apply_snapshot(post("alice", "/soutien 50", claims_staff=False))
    entries, status = ledger_rows(svc), _commons(svc)["status"]
    applier.apply_snapshot(post(username, "/annuler plus besoin"))
    assert _commons(svc)["status"] == status
    assert ledger_rows(svc) == entries
    assert handlers.verify_ledger(svc) == []
