"""Use cases: each runs in a unit of work — load, ask the engine, save entries and events, commit.

Inputs are already-typed values (cents, aware datetimes); the CLI and the web layer parse text.
Results are plain dicts and lists in the shapes of CONTRACT §6 (`--json`) so every entry point
shows the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from fractions import Fraction
from typing import Callable

from babel.numbers import list_currencies
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from commons_sync.engine import events as ev
from commons_sync.engine import rules
from commons_sync.engine.errors import InvalidOperation, NotFound
from commons_sync.engine.ledger import project
from commons_sync.engine.model import (
    Commons,
    Contribution,
    MatchingRule,
    MemberAccount,
    PaymentState,
    Pledge,
    Round,
    Status,
)
from commons_sync.engine.results import ResultLine, Results, round_results

from .unit_of_work import UnitOfWork, run

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
ADDRESS = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")


def member_name(text: str) -> str:
    """A forum username as the service keys it: without `@`, lower case (Discourse ignores case).

    Raises:
        InvalidOperation: the text is empty or looks like an email address (never published).
    """
    name = text.strip().removeprefix("@").strip().lower()
    if not name or ADDRESS.fullmatch(name):
        raise InvalidOperation("not_a_username", name=text.strip())
    return name


def display_name(text: str | None) -> str | None:
    """A referent as people will read it on the forum and the wiki: never an email address."""
    if text is None or not text.strip():
        return None
    if ADDRESS.search(text):
        raise InvalidOperation("not_a_username", name=text.strip())
    return text.strip()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Service:
    """What every use case needs: the database and a clock (tests pass their own)."""

    engine: Engine
    clock: Callable[[], datetime] = utcnow
    zone: tzinfo = timezone.utc  # dates shown to people (COMMONS_SYNC_TIMEZONE)

    def run(self, use_case):
        return run(self.engine, use_case, clock=self.clock)


# --- rounds ---------------------------------------------------------------------------------------


@dataclass
class RoundSpec:
    slug: str
    name: str
    allocation_cents: int
    group: str
    currency: str = "EUR"
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    recurring: str | None = None
    unspent: str = "carry"
    matching_ratio: str | None = None
    matching_pool_cents: int | None = None
    matching_cap_cents: int | None = None
    matching_group: str | None = None
    partial_threshold_pct: int | None = None
    remind_days: tuple[int, ...] = (7, 2)
    results_topic_id: int | None = None


def create_round(svc: Service, spec: RoundSpec) -> Round:
    """Create a round; it opens at creation unless `opens_at` says later."""
    if not SLUG.fullmatch(spec.slug):
        raise InvalidOperation("invalid_slug", slug=spec.slug)
    currency = spec.currency.upper()
    if currency not in list_currencies():
        raise InvalidOperation("invalid_currency", currency=spec.currency)
    now = svc.clock()
    opens_at = spec.opens_at or now
    if spec.closes_at is not None and spec.closes_at <= opens_at:
        raise InvalidOperation("closes_before_opens", closes=spec.closes_at.astimezone(svc.zone).isoformat(),
                               opens=opens_at.astimezone(svc.zone).isoformat())
    if spec.allocation_cents <= 0:
        raise InvalidOperation("amount_not_positive")
    if spec.partial_threshold_pct is not None and not 0 < spec.partial_threshold_pct <= 100:
        raise InvalidOperation("invalid_threshold", value=spec.partial_threshold_pct)
    matching = None
    if spec.matching_ratio is not None or spec.matching_pool_cents is not None:
        try:
            ratio = Fraction(spec.matching_ratio or "1")
        except (ValueError, ZeroDivisionError):
            raise InvalidOperation("invalid_ratio", value=spec.matching_ratio) from None
        if ratio <= 0 or not spec.matching_pool_cents or spec.matching_pool_cents <= 0:
            raise InvalidOperation("invalid_ratio", value=spec.matching_ratio)
        matching = MatchingRule(ratio, spec.matching_pool_cents, spec.matching_cap_cents,
                                spec.matching_group)
    round_ = Round(slug=spec.slug, name=spec.name, currency=currency,
                   allocation_cents=spec.allocation_cents, group=spec.group, opens_at=opens_at,
                   closes_at=spec.closes_at, recurring=spec.recurring, unspent=spec.unspent,
                   matching=matching, partial_threshold_pct=spec.partial_threshold_pct,
                   remind_days=tuple(spec.remind_days), results_topic_id=spec.results_topic_id)

    def use_case(uow: UnitOfWork) -> Round:
        if uow.repo.round_by_slug(spec.slug) is not None:
            raise InvalidOperation("duplicate_slug", slug=spec.slug)
        uow.repo.add(round_, created_at=now)
        uow.commit()
        return round_

    try:
        return svc.run(use_case)
    except IntegrityError:
        raise InvalidOperation("duplicate_slug", slug=spec.slug) from None


def _round(uow: UnitOfWork, slug: str, *, lock: bool = False) -> Round:
    round_ = uow.repo.round_by_slug(slug, lock=lock)
    if round_ is None:
        raise NotFound("not_found", what="round", key=slug)
    return round_


def list_rounds(svc: Service) -> list[dict]:
    now = svc.clock()
    return svc.run(lambda uow: [_round_summary(svc, r, now) for r in uow.repo.rounds()])


def _round_summary(svc: Service, r: Round, now: datetime) -> dict:
    shown = lambda when: when.astimezone(svc.zone).isoformat() if when else None  # noqa: E731
    return {"slug": r.slug, "name": r.name, "status": r.status(now), "currency": r.currency,
            "allocation": _units(r.allocation_cents), "group": r.group,
            "opens": shown(r.opens_at), "closes": shown(r.closes_at)}


def show_round(svc: Service, slug: str) -> dict:
    """The round and every member who has pledged or been credited (CONTRACT §6)."""
    now = svc.clock()

    def use_case(uow: UnitOfWork) -> dict:
        round_ = _round(uow, slug)
        summary = _round_summary(svc, round_, now)
        members = []
        for account in uow.repo.accounts(round_.id):
            # Show what is due now, without writing: a preview of the credits the next change adds.
            rules.credit_due(account, round_, now)
            members.append({"username": account.username,
                            "allocated": _units(account.credited_cents),
                            "pledged": _units(account.pledged_cents),
                            "balance": _units(account.balance_cents)})
        summary["members"] = members
        if round_.matching:
            summary["matching"] = {"ratio": str(round_.matching.ratio),
                                   "pool": _units(round_.matching.pool_cents),
                                   "used": _units(round_.matching_used_cents)}
        return summary

    return svc.run(use_case)


def grant(svc: Service, slug: str, username: str, amount_cents: int, *, set_to: bool = False,
          reason: str | None = None) -> dict:
    """Add to (or set) a member's allocation, with the reason in the ledger."""
    now = svc.clock()

    def use_case(uow: UnitOfWork) -> dict:
        round_ = _round(uow, slug, lock=True)
        account = uow.repo.get_or_add_account(round_.id, member_name(username))
        uow.repo.append(rules.grant(account, round_, amount_cents, set_to=set_to, reason=reason, now=now))
        uow.commit()
        return {"username": account.username, "allocated": _units(account.credited_cents),
                "pledged": _units(account.pledged_cents), "balance": _units(account.balance_cents)}

    return svc.run(use_case)


def close_round(svc: Service, slug: str) -> Results:
    """Close the round: decide each commons' status, release what is not funded, freeze results."""
    now = svc.clock()

    def use_case(uow: UnitOfWork) -> Results:
        round_ = _round(uow, slug, lock=True)
        if round_.closed_at is not None:
            raise InvalidOperation("round_already_closed", round=slug)
        commons_list = uow.repo.commons_of_round(round_.id)
        counts = uow.repo.cofunder_counts(round_.id)
        released = []
        for commons in commons_list:
            closing = rules.decide_closing(round_, commons)
            if commons.status not in (Status.IDEA, Status.CANCELLED, Status.DONE):
                commons.closed_raised_cents = commons.raised_cents
                commons.closed_cofunders = counts.get(commons.id, 0)
            if closing.status != commons.status:
                commons.status = closing.status
                commons.figures_changed_at = now
            if closing.release:
                released.append(commons)
        uow.repo.release_live_pledges([c.id for c in released], f"close {slug}", now)
        for commons in released:
            # The set-based release changed the totals in SQL; mirror them on the loaded objects.
            round_.matching_used_cents -= commons.matched_cents
            commons.pledged_cents = commons.matched_cents = 0
        round_.closed_at = now
        uow.collect([ev.FiguresChanged(c.id, round_.id) for c in commons_list])
        uow.collect([ev.RoundClosed(round_.id)])
        uow.commit()
        return _results(uow, round_, commons_list)

    return svc.run(use_case)


def close_due_rounds(svc: Service) -> list[str]:
    """Close every round whose closing date has come (the worker calls this)."""
    due = svc.run(lambda uow: uow.repo.rounds_due_to_close(svc.clock()))
    closed = []
    for slug in due:
        try:
            close_round(svc, slug)
            closed.append(slug)
        except InvalidOperation:
            pass  # another worker closed it first
    return closed


def results(svc: Service, slug: str) -> Results:
    return svc.run(lambda uow: _results(uow, _round(uow, slug)))


def _results(uow: UnitOfWork, round_: Round, commons_list: list[Commons] | None = None) -> Results:
    if commons_list is None:
        commons_list = uow.repo.commons_of_round(round_.id)
    counts = uow.repo.cofunder_counts(round_.id)
    lines = []
    for c in commons_list:
        at_close = c.status is Status.UNFUNDED and c.closed_raised_cents is not None
        raised = c.closed_raised_cents if at_close else c.raised_cents
        count = c.closed_cofunders if at_close else counts.get(c.id, 0)
        lines.append(ResultLine(c.id, c.title, c.status, None if c.status is Status.IDEA else raised,
                                None if c.status is Status.IDEA else count, c.wiki_title, c.topic_id))
    return round_results(lines)


# --- commons --------------------------------------------------------------------------------------


@dataclass
class CommonsSpec:
    round_slug: str
    title: str
    goal_cents: int | None
    cap_cents: int | None = None
    referent: str | None = None
    topic_id: int | None = None
    first_post_number: int = 0
    discussion_url: str | None = None
    wiki_title: str | None = None
    organisations: str | None = None
    next_steps: str | None = None


def open_commons(svc: Service, spec: CommonsSpec) -> Commons:
    """Open a commons (or record an idea) in a round; its status post and fiche follow via the outbox."""
    now = svc.clock()

    def use_case(uow: UnitOfWork) -> Commons:
        round_ = _round(uow, spec.round_slug, lock=True)
        if spec.topic_id is not None and uow.repo.commons_by_topic(spec.topic_id) is not None:
            raise InvalidOperation("duplicate_topic", topic_id=spec.topic_id)
        if not spec.title.strip():
            raise InvalidOperation("empty_title")
        commons = rules.new_commons(
            round_, spec.title.strip(), spec.goal_cents, spec.cap_cents, now,
            referent=display_name(spec.referent),
            topic_id=spec.topic_id, first_post_number=spec.first_post_number,
            discussion_url=spec.discussion_url, wiki_title=_wiki_title(spec.wiki_title),
            organisations=spec.organisations, next_steps=spec.next_steps)
        uow.repo.add(commons)
        uow.collect([ev.CommonsOpened(commons.id, round_.id)])
        uow.commit()
        return commons

    try:
        return svc.run(use_case)
    except IntegrityError:
        if spec.topic_id is None:
            raise InvalidOperation("duplicate_wiki_title", title=_wiki_title(spec.wiki_title)) from None
        raise InvalidOperation("duplicate_topic", topic_id=spec.topic_id) from None


def _wiki_title(title: str | None) -> str | None:
    """A fiche title chosen by staff, made a valid title of the main namespace (CONTRACT §4)."""
    from commons_sync.mediawiki.fiche import page_title_for

    return page_title_for(title) if title is not None else None


def commons_view(commons: Commons, round_: Round, names: list[str]) -> dict:
    """A commons as `--json` and the public API show it (CONTRACT §6)."""
    return {
        "id": commons.id, "topic_id": commons.topic_id, "title": commons.title, "round": round_.slug,
        "status": commons.status.value, "goal": _units(commons.goal_cents),
        "cap": _units(commons.cap_cents), "raised": _units(commons.raised_cents),
        "pledged": _units(commons.pledged_cents), "contributed": _units(commons.contributed_cents),
        "matched": _units(commons.matched_cents), "cofunders": len(names), "cofunder_names": names,
        "currency": round_.currency, "percent": commons.percent, "referent": commons.referent,
        "organisations": commons.organisations, "next_steps": commons.next_steps,
        "discussion_url": commons.discussion_url, "wiki_title": commons.wiki_title,
    }


def list_commons(svc: Service, round_slug: str | None = None) -> list[dict]:
    def use_case(uow: UnitOfWork) -> list[dict]:
        rounds = {r.id: r for r in uow.repo.rounds()}
        if round_slug is not None:
            round_ = _round(uow, round_slug)
            items = uow.repo.commons_of_round(round_.id)
        else:
            items = uow.repo.all_commons()
        names = uow.repo.cofunder_names([c.id for c in items])
        return [commons_view(c, rounds[c.round_id], names.get(c.id, [])) for c in items]

    return svc.run(use_case)


def show_commons(svc: Service, commons_id: int) -> dict:
    def use_case(uow: UnitOfWork) -> dict:
        commons = _commons(uow, commons_id)
        names = uow.repo.cofunder_names([commons.id]).get(commons.id, [])
        return commons_view(commons, uow.repo.round(commons.round_id), names)

    return svc.run(use_case)


MAX_ID = 2**63 - 1  # ids are 64-bit in every database


def _commons(uow: UnitOfWork, commons_id: int) -> Commons:
    commons = uow.repo.commons(commons_id) if 0 < commons_id <= MAX_ID else None
    if commons is None:
        raise NotFound("not_found", what="commons", key=commons_id)
    return commons


# --- contributions and payments -------------------------------------------------------------------


def add_contribution(svc: Service, commons_id: int, amount_cents: int, source: str,
                     username: str | None = None) -> int:
    """Record money from outside the forum (e.g. a "sur-adhésion"); it counts toward the goal."""
    now = svc.clock()

    def use_case(uow: UnitOfWork) -> int:
        round_id = uow.repo.commons_round_id(commons_id) if 0 < commons_id <= MAX_ID else None
        if round_id is None:
            raise NotFound("not_found", what="commons", key=commons_id)
        round_ = uow.repo.round(round_id, lock=True)
        commons = _commons(uow, commons_id)
        contribution = Contribution(commons.id, round_.id, amount_cents, source.strip(),
                                    member_name(username) if username else None,
                                    created_at=now)
        uow.repo.add(contribution)  # a refusal below rolls the whole unit of work back
        outcome = rules.add_contribution(commons, round_, contribution, now)
        uow.repo.append(outcome.entries)
        uow.collect(outcome.events)
        uow.commit()
        return contribution.id

    return svc.run(use_case)


def mark_payment(svc: Service, kind: str, item_id: int, target: PaymentState) -> dict:
    """Move a pledge or a contribution forward: pledged → invoiced → paid."""

    def use_case(uow: UnitOfWork) -> dict:
        if not 0 < item_id <= MAX_ID:
            raise NotFound("not_found", what=kind, key=item_id)
        item = uow.repo.pledge(item_id) if kind == "pledge" else uow.repo.contribution(item_id)
        if item is None:
            raise NotFound("not_found", what=kind, key=item_id)
        item.payment = rules.advance_payment(item.payment, target)
        if kind == "pledge":
            uow.repo.mark_payment(state=target, pledge_id=item.id)
        else:
            uow.repo.mark_payment(state=target, contribution_id=item.id)
        uow.commit()
        return {"id": item.id, "payment": item.payment.value}

    return svc.run(use_case)


def list_pledges(svc: Service, round_slug: str | None = None, commons_id: int | None = None) -> list[dict]:
    def use_case(uow: UnitOfWork) -> list[dict]:
        round_id = _round(uow, round_slug).id if round_slug else None
        return [{"id": p.id, "post_id": p.post_id, "commons_id": p.commons_id, "username": p.username,
                 "amount": _units(p.amount_cents), "matched": _units(p.matched_cents),
                 "state": p.state.value, "payment": p.payment.value, "version": p.version,
                 "refusal": p.refusal}
                for p in uow.repo.pledges(round_id=round_id, commons_id=commons_id)]

    return svc.run(use_case)


# --- pledge posts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostChange:
    """A pledge post's change as the forum reported it (snapshot, deletion or recovery)."""

    post_id: int
    topic_id: int
    username: str
    kind: str                      # "snapshot" | "destroyed" | "recovered"
    version: int = 0
    amount_cents: int | None = None
    error: str | None = None
    error_params: tuple = ()
    deleted: bool = False
    post_number: int | None = None
    is_member: bool = True
    matching_eligible: bool = False


@dataclass
class PostOutcome:
    applied: bool
    events: list = field(default_factory=list)

    @property
    def refused(self) -> ev.PledgeRefused | None:
        return next((e for e in self.events if isinstance(e, ev.PledgeRefused)), None)


def apply_post(svc: Service, change: PostChange) -> PostOutcome:
    """Apply one forum post change to the ledger, under the round's lock."""
    now = svc.clock()

    def use_case(uow: UnitOfWork) -> PostOutcome:
        known = uow.repo.pledge_by_post(change.post_id)
        commons = (uow.repo.commons(known.commons_id) if known is not None
                   else uow.repo.commons_by_topic(change.topic_id))
        if commons is None:
            return PostOutcome(False)
        round_ = uow.repo.round(commons.round_id, lock=True)
        commons = uow.repo.commons(commons.id)  # read again under the round's lock
        pledge = uow.repo.pledge_by_post(change.post_id)
        if pledge is None:
            no_line = change.kind == "snapshot" and change.amount_cents is None and change.error is None
            if no_line and change.version <= 1:
                return PostOutcome(False)  # a post that never had a pledge line is no pledge
            # An edited post without a pledge line is recorded (no amount): a late older version
            # that had one is then known as older and never overrides it.
            pledge = Pledge(change.post_id, round_.id, commons.id, change.username.strip().lower(),
                            post_number=change.post_number)
            uow.repo.add(pledge)
        account = uow.repo.account(round_.id, pledge.username)
        keep_account = account is not None or (change.is_member and change.error is None and not (
            change.kind == "snapshot" and change.amount_cents is None))
        if account is None:
            # A refused post (not a member, malformed amount) by someone with no account yet:
            # their envelope is computed for the reply, but no account nor allocation is written.
            account = MemberAccount(round_.id, pledge.username)
            if keep_account:
                uow.repo.add(account)
        credits = rules.credit_due(account, round_, now) if round_.is_open(now) else []
        if not keep_account:
            credits = []
        ctx = rules.PledgeContext(round_, commons, account, pledge, now, change.is_member,
                                  change.matching_eligible)
        if change.kind == "snapshot":
            outcome = rules.apply_snapshot(ctx, rules.Snapshot(change.version, change.amount_cents,
                                                               change.error, change.deleted,
                                                               change.error_params))
        elif change.kind == "destroyed":
            outcome = rules.apply_destroyed(ctx)
        elif change.kind == "recovered":
            outcome = rules.apply_recovered(ctx)
        else:
            raise ValueError(change.kind)
        uow.repo.append(credits + outcome.entries)
        uow.collect(outcome.events)
        uow.commit()
        return PostOutcome(True, outcome.events)

    return svc.run(use_case)


# --- ledger ---------------------------------------------------------------------------------------


def verify_ledger(svc: Service) -> list[str]:
    """Compare every stored total with the sums of the ledger; return the differences found."""

    def use_case(uow: UnitOfWork) -> list[str]:
        totals = project(uow.repo.entries())
        problems = []
        for round_ in uow.repo.rounds():
            if totals.matching_used[round_.id] != round_.matching_used_cents:
                problems.append(f"round {round_.slug}: matching used {round_.matching_used_cents}"
                                f" != ledger {totals.matching_used[round_.id]}")
            for a in uow.repo.accounts(round_.id):
                key = (round_.id, a.username)
                if (a.credited_cents, a.pledged_cents) != (totals.credited[key], totals.pledged_by_member[key]):
                    problems.append(f"account {a.username}@{round_.slug}: {a.credited_cents}/{a.pledged_cents}"
                                    f" != ledger {totals.credited[key]}/{totals.pledged_by_member[key]}")
                if a.balance_cents < 0:
                    problems.append(f"account {a.username}@{round_.slug}: balance below zero")
        for c in uow.repo.all_commons():
            stored = (c.pledged_cents, c.contributed_cents, c.matched_cents)
            derived = (totals.pledged[c.id], totals.contributed[c.id], totals.matched[c.id])
            if stored != derived:
                problems.append(f"commons {c.id}: {stored} != ledger {derived}")
            if c.ceiling_cents is not None and c.raised_cents > c.ceiling_cents:
                problems.append(f"commons {c.id}: raised {c.raised_cents} above cap {c.ceiling_cents}")
        return problems

    return svc.run(use_case)


def export_rows(svc: Service) -> list:
    return svc.run(lambda uow: uow.repo.export_rows())


def _units(cents: int | None) -> float | int | None:
    if cents is None:
        return None
    return cents // 100 if cents % 100 == 0 else cents / 100
