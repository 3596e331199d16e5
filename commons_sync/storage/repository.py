"""Loads and saves the engine's objects, and answers the service's questions with set-based SQL.

Objects loaded through the repository are remembered with the values they had; `flush()` writes
back only the fields that changed (the way an ORM session would, without mapping the domain).
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from fractions import Fraction
from typing import Any, Iterable

from sqlalchemy import Connection, Table, and_, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from commons_sync.engine.model import (
    Commons,
    Contribution,
    Entry,
    EntryKind,
    MatchingRule,
    MemberAccount,
    PaymentState,
    Pledge,
    PledgeState,
    Round,
    Status,
)

from . import tables as t


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


# --- row <-> object -----------------------------------------------------------------------------

def _round_from_row(row) -> Round:
    matching = None
    if row.matching_ratio is not None:
        matching = MatchingRule(Fraction(row.matching_ratio), row.matching_pool_cents or 0,
                                row.matching_cap_cents, row.matching_group)
    return Round(
        id=row.id, slug=row.slug, name=row.name, currency=row.currency,
        allocation_cents=row.allocation_cents, group=row.group_name, opens_at=_aware(row.opens_at),
        closes_at=_aware(row.closes_at), recurring=row.recurring, unspent=row.unspent,
        matching=matching, partial_threshold_pct=row.partial_threshold_pct,
        remind_days=tuple(int(d) for d in row.remind_days.split(",") if d.strip()),
        results_topic_id=row.results_topic_id, closed_at=_aware(row.closed_at),
        matching_used_cents=row.matching_used_cents,
    )


def _round_to_row(r: Round) -> dict:
    m = r.matching
    return dict(
        slug=r.slug, name=r.name, currency=r.currency, allocation_cents=r.allocation_cents,
        group_name=r.group, opens_at=r.opens_at, closes_at=r.closes_at, recurring=r.recurring,
        unspent=r.unspent, matching_ratio=str(m.ratio) if m else None,
        matching_pool_cents=m.pool_cents if m else None,
        matching_cap_cents=m.cap_per_commons_cents if m else None,
        matching_group=m.group if m else None, partial_threshold_pct=r.partial_threshold_pct,
        remind_days=",".join(str(d) for d in r.remind_days), results_topic_id=r.results_topic_id,
        closed_at=r.closed_at, matching_used_cents=r.matching_used_cents,
    )


def _plain_from_row(cls, row, **conversions):
    values = {}
    for f in fields(cls):
        if f.name in row._mapping:
            value = row._mapping[f.name]
            if isinstance(value, datetime):
                value = _aware(value)
            values[f.name] = conversions[f.name](value) if f.name in conversions and value is not None else value
    return cls(**values)


def _plain_to_row(obj, table: Table) -> dict:
    row = {}
    for f in fields(obj):
        if f.name != "id" and f.name in table.c:
            value = getattr(obj, f.name)
            row[f.name] = value.value if hasattr(value, "value") else value
    return row


_MAPPERS = {
    Round: (t.rounds, _round_from_row, _round_to_row),
    MemberAccount: (t.accounts, lambda row: _plain_from_row(MemberAccount, row),
                    lambda o: _plain_to_row(o, t.accounts)),
    Commons: (t.commons, lambda row: _plain_from_row(Commons, row, status=Status),
              lambda o: _plain_to_row(o, t.commons)),
    Pledge: (t.pledges, lambda row: _plain_from_row(Pledge, row, state=PledgeState, payment=PaymentState),
             lambda o: _plain_to_row(o, t.pledges)),
    Contribution: (t.contributions, lambda row: _plain_from_row(Contribution, row, payment=PaymentState),
                   lambda o: _plain_to_row(o, t.contributions)),
}


class Repository:
    """The service's access to stored state, inside one transaction (`conn`)."""

    def __init__(self, conn: Connection, clock=None) -> None:
        self.conn = conn
        self.clock = clock or utcnow  # the service's clock: tests move it by hand
        self._seen: list[tuple[object, dict]] = []

    # -- generic ---------------------------------------------------------------------------------

    def _load(self, cls, where, *, lock: bool = False):
        table, from_row, to_row = _MAPPERS[cls]
        query = select(table).where(where)
        if lock:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        if row is None:
            return None
        return self._track(from_row(row))

    def _load_many(self, cls, where, order_by=None) -> list:
        table, from_row, _ = _MAPPERS[cls]
        query = select(table).where(where)
        query = query.order_by(*(order_by if order_by is not None else [table.c.id]))
        return [self._track(from_row(row)) for row in self.conn.execute(query)]

    def _track(self, obj):
        _, _, to_row = _MAPPERS[type(obj)]
        self._seen.append((obj, to_row(obj)))
        return obj

    def add(self, obj, **extra):
        """Insert a new object (its `id` is filled in) and track it for later changes."""
        table, _, to_row = _MAPPERS[type(obj)]
        row = to_row(obj) | extra
        now = self.clock()
        for stamp in ("created_at", "updated_at"):
            if stamp in table.c and row.get(stamp) is None:
                row[stamp] = now
        obj.id = self.conn.execute(insert(table).returning(table.c.id), row).scalar_one()
        return self._track(obj)

    def flush(self) -> None:
        """Write back the fields of tracked objects that changed since they were loaded."""
        for index, (obj, before) in enumerate(self._seen):
            table, _, to_row = _MAPPERS[type(obj)]
            after = to_row(obj)
            changed = {key: value for key, value in after.items() if before.get(key) != value}
            if changed:
                if "updated_at" in table.c:
                    changed["updated_at"] = self.clock()
                self.conn.execute(update(table).where(table.c.id == obj.id).values(**changed))
                self._seen[index] = (obj, after)

    # -- rounds ----------------------------------------------------------------------------------

    def round_by_slug(self, slug: str, *, lock: bool = False) -> Round | None:
        return self._load(Round, t.rounds.c.slug == slug, lock=lock)

    def round(self, round_id: int, *, lock: bool = False) -> Round | None:
        return self._load(Round, t.rounds.c.id == round_id, lock=lock)

    def rounds(self) -> list[Round]:
        return self._load_many(Round, literal(True), order_by=[t.rounds.c.opens_at, t.rounds.c.id])

    def rounds_due_to_close(self, now: datetime) -> list[str]:
        query = select(t.rounds.c.slug).where(t.rounds.c.closed_at.is_(None), t.rounds.c.closes_at <= now)
        return list(self.conn.execute(query).scalars())

    # -- accounts --------------------------------------------------------------------------------

    def account(self, round_id: int, username: str) -> MemberAccount | None:
        return self._load(MemberAccount, and_(t.accounts.c.round_id == round_id,
                                              t.accounts.c.username == username))

    def get_or_add_account(self, round_id: int, username: str) -> MemberAccount:
        return self.account(round_id, username) or self.add(MemberAccount(round_id, username))

    def accounts(self, round_id: int) -> list[MemberAccount]:
        return self._load_many(MemberAccount, t.accounts.c.round_id == round_id,
                               order_by=[t.accounts.c.username])

    # -- commons ---------------------------------------------------------------------------------

    def commons(self, commons_id: int) -> Commons | None:
        return self._load(Commons, t.commons.c.id == commons_id)

    def commons_by_topic(self, topic_id: int) -> Commons | None:
        return self._load(Commons, t.commons.c.topic_id == topic_id)

    def commons_of_round(self, round_id: int) -> list[Commons]:
        return self._load_many(Commons, t.commons.c.round_id == round_id)

    def all_commons(self) -> list[Commons]:
        return self._load_many(Commons, literal(True))

    def commons_round_id(self, commons_id: int) -> int | None:
        return self.conn.execute(select(t.commons.c.round_id).where(t.commons.c.id == commons_id)).scalar()

    def wiki_last_written(self, commons_id: int) -> dict | None:
        """What the service last wrote in the commons' fiche (to tell a person's edits from ours)."""
        raw = self.conn.execute(select(t.commons.c.wiki_last_written).where(t.commons.c.id == commons_id)).scalar()
        return json.loads(raw) if raw else None

    def set_wiki_written(self, commons_id: int, written: dict, revid: int) -> None:
        self.conn.execute(update(t.commons).where(t.commons.c.id == commons_id).values(
            wiki_last_written=json.dumps(written, sort_keys=True, ensure_ascii=False), wiki_revid=revid))

    def wiki_titles(self) -> set[str]:
        query = select(t.commons.c.wiki_title).where(t.commons.c.wiki_title.is_not(None))
        return set(self.conn.execute(query).scalars())

    # -- pledges ---------------------------------------------------------------------------------

    def pledge_by_post(self, post_id: int) -> Pledge | None:
        return self._load(Pledge, t.pledges.c.post_id == post_id)

    def pledge(self, pledge_id: int) -> Pledge | None:
        return self._load(Pledge, t.pledges.c.id == pledge_id)

    def pledges(self, *, round_id: int | None = None, commons_id: int | None = None,
                live_only: bool = False) -> list[Pledge]:
        conditions = [literal(True)]
        if round_id is not None:
            conditions.append(t.pledges.c.round_id == round_id)
        if commons_id is not None:
            conditions.append(t.pledges.c.commons_id == commons_id)
        if live_only:
            conditions.append(t.pledges.c.state == PledgeState.LIVE.value)
        return self._load_many(Pledge, and_(*conditions))

    # -- contributions ---------------------------------------------------------------------------

    def contribution(self, contribution_id: int) -> Contribution | None:
        return self._load(Contribution, t.contributions.c.id == contribution_id)

    def contributions(self, commons_id: int) -> list[Contribution]:
        return self._load_many(Contribution, t.contributions.c.commons_id == commons_id)

    def mark_payment(self, *, state: PaymentState, pledge_id: int | None = None,
                     contribution_id: int | None = None) -> None:
        self.conn.execute(insert(t.payment_marks).values(
            at=self.clock(), pledge_id=pledge_id, contribution_id=contribution_id, state=state.value))

    # -- ledger ----------------------------------------------------------------------------------

    def append(self, entries: Iterable[Entry]) -> None:
        """Append ledger entries (never updated, never deleted)."""
        now = self.clock()
        rows = [dict(at=e.at or now, round_id=e.round_id, commons_id=e.commons_id, username=e.username,
                     kind=EntryKind(e.kind).value, amount_cents=e.amount_cents,
                     pledge_post_id=e.pledge_post_id, contribution_id=e.contribution_id, note=e.note)
                for e in entries]
        if rows:
            self.conn.execute(insert(t.ledger_entries), rows)

    def entries(self, round_id: int | None = None) -> list[Entry]:
        query = select(t.ledger_entries).order_by(t.ledger_entries.c.id)
        if round_id is not None:
            query = query.where(t.ledger_entries.c.round_id == round_id)
        return [Entry(kind=EntryKind(r.kind), amount_cents=r.amount_cents, round_id=r.round_id,
                      commons_id=r.commons_id, username=r.username, pledge_post_id=r.pledge_post_id,
                      contribution_id=r.contribution_id, note=r.note, at=_aware(r.at), id=r.id)
                for r in self.conn.execute(query)]

    def export_rows(self) -> list[Any]:
        """Ledger entries joined with what an accountant needs: round, commons, payment state."""
        e, c, r, p, k = t.ledger_entries, t.commons, t.rounds, t.pledges, t.contributions
        query = (
            select(e.c.id, e.c.at, r.c.slug, r.c.currency, e.c.username, e.c.commons_id,
                   c.c.title, e.c.kind, e.c.amount_cents, e.c.note,
                   func.coalesce(p.c.payment, k.c.payment).label("payment"), p.c.id.label("pledge_id"),
                   e.c.contribution_id)
            .select_from(e.join(r, r.c.id == e.c.round_id)
                         .outerjoin(c, c.c.id == e.c.commons_id)
                         .outerjoin(p, p.c.post_id == e.c.pledge_post_id)
                         .outerjoin(k, k.c.id == e.c.contribution_id))
            .order_by(e.c.id)
        )
        return list(self.conn.execute(query))

    # -- cofunders -------------------------------------------------------------------------------

    def _cofunder_pairs(self, commons_ids: list[int] | None):
        p, k = t.pledges, t.contributions
        pledged = select(p.c.commons_id, p.c.username).where(p.c.state == PledgeState.LIVE.value,
                                                             p.c.amount_cents > 0)
        contributed = select(k.c.commons_id, k.c.username).where(k.c.username.is_not(None))
        if commons_ids is not None:
            pledged = pledged.where(p.c.commons_id.in_(commons_ids))
            contributed = contributed.where(k.c.commons_id.in_(commons_ids))
        return pledged.union(contributed).subquery()

    def cofunder_counts(self, round_id: int) -> dict[int, int]:
        """Number of distinct cofunders per commons of a round, counted by the database."""
        p, k, c = t.pledges, t.contributions, t.commons
        in_round = select(c.c.id).where(c.c.round_id == round_id)
        pledged = select(p.c.commons_id, p.c.username).where(
            p.c.round_id == round_id, p.c.state == PledgeState.LIVE.value, p.c.amount_cents > 0)
        contributed = select(k.c.commons_id, k.c.username).where(
            k.c.commons_id.in_(in_round), k.c.username.is_not(None))
        pairs = pledged.union(contributed).subquery()
        query = select(pairs.c.commons_id, func.count()).group_by(pairs.c.commons_id)
        return dict(self.conn.execute(query).all())

    def cofunder_names(self, commons_ids: Iterable[int] | None = None) -> dict[int, list[str]]:
        """Distinct members with a live pledge or a contribution, per commons, sorted by name."""
        union = self._cofunder_pairs(None if commons_ids is None else list(commons_ids))
        names: dict[int, list[str]] = {}
        for commons_id, username in self.conn.execute(
                select(union.c.commons_id, union.c.username).order_by(union.c.commons_id, union.c.username)):
            names.setdefault(commons_id, []).append(username)
        return names

    # -- bulk release (round close, cancel) -----------------------------------------------------

    def release_live_pledges(self, commons_ids: list[int], note: str, now: datetime) -> None:
        """Release every live pledge of these commons by reversing entries, in set-based SQL.

        The same rule as `engine.rules.release_pledge`, applied to many pledges at once; the
        property tests check the two give the same ledger.
        """
        if not commons_ids:
            return
        p, e, a = t.pledges, t.ledger_entries, t.accounts
        live = and_(p.c.commons_id.in_(commons_ids), p.c.state == PledgeState.LIVE.value)
        self.conn.execute(insert(e).from_select(
            ["at", "round_id", "commons_id", "username", "kind", "amount_cents", "pledge_post_id", "note"],
            select(literal(now, type_=e.c.at.type), p.c.round_id, p.c.commons_id, p.c.username,
                   literal(EntryKind.RELEASE.value), -p.c.amount_cents, p.c.post_id, literal(note))
            .where(live).order_by(p.c.id)))
        self.conn.execute(insert(e).from_select(
            ["at", "round_id", "commons_id", "username", "kind", "amount_cents", "pledge_post_id", "note"],
            select(literal(now, type_=e.c.at.type), p.c.round_id, p.c.commons_id, literal(None, type_=e.c.username.type),
                   literal(EntryKind.MATCHING_RELEASE.value), -p.c.matched_cents, p.c.post_id, literal(note))
            .where(live, p.c.matched_cents > 0).order_by(p.c.id)))
        mine = and_(live, p.c.round_id == a.c.round_id, p.c.username == a.c.username)
        released = select(func.sum(p.c.amount_cents)).where(mine).scalar_subquery()
        self.conn.execute(update(a).where(select(p.c.id).where(mine).exists())
                          .values(pledged_cents=a.c.pledged_cents - released))
        self.conn.execute(update(p).where(live).values(state=PledgeState.RELEASED.value, amount_cents=0,
                                                       matched_cents=0, updated_at=now))

    # -- outbox ----------------------------------------------------------------------------------

    def enqueue_many(self, rows: list[tuple[str, str, dict]]) -> None:
        """Several `enqueue`s in one round trip (a round's close touches every commons)."""
        now = self.clock()
        if rows:
            self.conn.execute(_upsert_outbox(self.conn.dialect.name), [dict(
                kind=kind, key=key, payload=json.dumps(payload or {}, sort_keys=True), created_at=now,
                updated_at=now, not_before=now) for kind, key, payload in rows])

    def enqueue(self, kind: str, key: str, payload: dict | None = None, *, now: datetime | None = None,
                delay_seconds: float = 0) -> None:
        """Add a side effect to the outbox, coalesced with a pending one of the same key."""
        now = now or self.clock()
        self.conn.execute(_upsert_outbox(self.conn.dialect.name), dict(
            kind=kind, key=key, payload=json.dumps(payload or {}, sort_keys=True), created_at=now,
            updated_at=now, not_before=now + timedelta(seconds=delay_seconds)))


@lru_cache(maxsize=None)
def _upsert_outbox(dialect_name: str):
    """One statement per dialect, built once, so SQLAlchemy's compiled cache serves every call."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    stmt = dialect.insert(t.outbox)
    return stmt.on_conflict_do_update(
        index_elements=[t.outbox.c.key],
        index_where=t.outbox.c.done_at.is_(None),
        set_=dict(payload=stmt.excluded.payload, updated_at=stmt.excluded.updated_at,
                  seq=t.outbox.c.seq + 1),
    )
