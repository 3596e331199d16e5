"""Cancelling a commons without losing its money, and moving pledges to another commons on agreement.

Policy (README "Annuler un commun"):
- `cancel` sets the status `annulé` and releases every live pledge at once, by reversing entries
  (`engine.rules.cancel_commons`): no member's money stays stuck on a cancelled commons.
  Contributions stay recorded; staff settle them with whoever paid.
- With `redirect_to`, each cofunder may agree with `/transferer oui` in the cancelled topic until
  `agree_until` = the earlier of 14 days after the cancel and the round's close. Agreeing pledges the
  amount they had on the cancelled commons to the target, under the same rules as a pledge post
  (the target's cap, their balance, round open): new ledger entries, noted "transfer from #ID".
  When a rule refuses it, nothing moves and they are told why. `/transferer non`, no answer, or an
  answer after the deadline: the pledge stays released. An answer is final.
- One reply in the topic mentions every cofunder; status post, fiche and results page follow
  through the outbox. Nothing is ever deleted.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select, update

from commons_sync import texts
from commons_sync.engine import rules
from commons_sync.engine.errors import InvalidOperation, NotFound, PledgeRefused
from commons_sync.engine.model import Pledge, Status
from commons_sync.i18n import format_money, t
from commons_sync.storage import lifecycle_tables as lt

from .handlers import MAX_ID, Service
from .unit_of_work import UnitOfWork

AGREEMENT_DAYS = 14
NOTICE = "lifecycle_notice"  # outbox kind: a reply rendered from a template at send time


class CancelRefused(InvalidOperation):
    """A cancel or redirect that the commons' state does not allow; `message(lang)` says why."""

    def message(self, lang: str) -> str:
        p = self.params
        sentences = {
            "already_cancelled": lambda: t(lang, "Le commun {id} est déjà annulé.", id=p.get("id")),
            "not_cancellable": lambda: t(lang, "Le commun {id} ne peut pas être annulé (statut : {status}).",
                                         id=p.get("id"), status=p.get("status")),
            "redirect_same": lambda: t(lang, "Un commun ne peut pas être redirigé vers lui-même."),
            "redirect_other_round": lambda: t(lang, "Le commun {id} n'est pas de la même campagne : "
                                                    "les promesses ne peuvent y être reportées.", id=p.get("id")),
            "redirect_not_open": lambda: t(lang, "Le commun {id} n'accepte pas de promesses (statut : {status}).",
                                           id=p.get("id"), status=p.get("status")),
            "redirect_round_closed": lambda: t(lang, "La campagne est close : les promesses ne peuvent plus "
                                                     "être reportées."),
            "reason_required": lambda: t(lang, "Une raison est demandée pour annuler un commun."),
        }
        return sentences.get(self.code, lambda: texts.reason("invalid_operation", lang))()


@dataclass
class Cancelled:
    """What a cancel did: the amounts given back per member, and the redirect offered."""

    commons_id: int
    released: dict[str, int] = field(default_factory=dict)
    redirect_to: int | None = None
    agree_until: datetime | None = None


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def cancel_commons(svc: Service, commons_id: int, reason: str, *, redirect_to: int | None = None,
                   by: str | None = None, reply_to_post_number: int = 1) -> Cancelled:
    """Cancel a commons (staff): status `annulé`, pledges released, cofunders told in its topic."""
    return svc.run(lambda uow: _commit(uow, cancel_in(uow, commons_id, reason, redirect_to=redirect_to,
                                                      by=by, reply_to_post_number=reply_to_post_number,
                                                      now=svc.clock())))


def _commit(uow: UnitOfWork, value):
    uow.commit()
    return value


def cancel_in(uow: UnitOfWork, commons_id: int, reason: str, *, redirect_to: int | None, by: str | None,
              reply_to_post_number: int, now: datetime) -> Cancelled:
    """`cancel_commons` inside the caller's unit of work (the forum command records its post with it)."""
    reason = (reason or "").strip()
    if not reason:
        raise CancelRefused("reason_required")
    round_id = uow.repo.commons_round_id(commons_id) if 0 < commons_id <= MAX_ID else None
    if round_id is None:
        raise NotFound("not_found", what="commons", key=commons_id)
    round_ = uow.repo.round(round_id, lock=True)
    commons = uow.repo.commons(commons_id)
    if commons.status is Status.CANCELLED:
        raise CancelRefused("already_cancelled", id=commons_id)
    if commons.status not in rules.CANCELLABLE:
        raise CancelRefused("not_cancellable", id=commons_id, status=commons.status.value)
    target = None
    if redirect_to is not None:
        target = uow.repo.commons(redirect_to) if 0 < redirect_to <= MAX_ID else None
        if target is None:
            raise NotFound("not_found", what="commons", key=redirect_to)
        if target.id == commons.id:
            raise CancelRefused("redirect_same")
        if target.round_id != round_.id:
            raise CancelRefused("redirect_other_round", id=target.id)
        if target.status not in rules.ACCEPTING:
            raise CancelRefused("redirect_not_open", id=target.id, status=target.status.value)
        if not round_.is_open(now):
            raise CancelRefused("redirect_round_closed")
    pledges = uow.repo.pledges(commons_id=commons.id, live_only=True)
    released: dict[str, int] = defaultdict(int)
    eligible: dict[str, bool] = defaultdict(bool)
    for pledge in pledges:
        released[pledge.username] += pledge.amount_cents
        eligible[pledge.username] |= pledge.matching_eligible
    accounts = {name: uow.repo.get_or_add_account(round_.id, name) for name in released}
    outcome = rules.cancel_commons(commons, round_, pledges, accounts, now, f"cancel #{commons.id}")
    uow.repo.append(outcome.entries)
    uow.collect(outcome.events)
    agree_until = None
    if target is not None:
        agree_until = now + timedelta(days=AGREEMENT_DAYS)
        if round_.closes_at is not None:
            agree_until = min(agree_until, round_.closes_at)
    conn = uow.repo.conn
    conn.execute(insert(lt.lifecycle_cancellations).values(
        commons_id=commons.id, reason=reason, cancelled_by=by, cancelled_at=now,
        redirect_to=target.id if target else None, agree_until=agree_until))
    if released:
        conn.execute(insert(lt.lifecycle_cancelled_pledges), [
            dict(commons_id=commons.id, username=name, released_cents=amount,
                 matching_eligible=eligible[name]) for name, amount in sorted(released.items())])
    if commons.topic_id is not None:
        contributions = bool(uow.repo.contributions(commons.id))
        context = {"reason": reason, "cofunders": sorted(released), "contributions": contributions,
                   "redirect": None}
        if target is not None:
            context["redirect"] = {"title": target.title, "topic_id": target.topic_id,
                                   "url": target.discussion_url, "until": agree_until.isoformat()}
        uow.repo.enqueue(NOTICE, f"{NOTICE}:cancel:{commons.id}", {
            "template": "cancel_notice", "topic_id": commons.topic_id,
            "reply_to_post_number": reply_to_post_number, "context": context})
    return Cancelled(commons.id, dict(released), target.id if target else None, agree_until)


# --- agreeing to a transfer ------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferAnswer:
    """What became of one `/transferer` answer: `outcome` and the figures its reply shows."""

    outcome: str          # moved | refused | declined | not_cofunder | no_redirect | expired | already
    amount_cents: int = 0
    balance_cents: int = 0
    target_title: str | None = None
    refusal: PledgeRefused | None = None
    until: datetime | None = None
    currency: str = "EUR"

    def message(self, lang: str, zone=timezone.utc) -> str:
        money = lambda cents: format_money(cents, self.currency, lang)  # noqa: E731
        if self.outcome == "moved":
            return t(lang, "C'est fait : votre promesse de {amount} est reportée sur « {title} ». "
                           "Votre solde : {balance}.", amount=money(self.amount_cents),
                     title=self.target_title, balance=money(self.balance_cents))
        if self.outcome == "refused":
            why = texts.reason(self.refusal.code, lang, money_currency=self.currency, **self.refusal.params)
            return t(lang, "Le report sur « {title} » n'a pas pu se faire : {why} Votre promesse de "
                           "{amount} reste libérée ; votre solde : {balance}.", title=self.target_title,
                     why=why, amount=money(self.amount_cents), balance=money(self.balance_cents))
        if self.outcome == "declined":
            return t(lang, "C'est noté : votre promesse de {amount} reste libérée ; votre solde : {balance}.",
                     amount=money(self.amount_cents), balance=money(self.balance_cents))
        if self.outcome == "not_cofunder":
            return t(lang, "Seuls les cofinanceurs de ce commun annulé peuvent répondre à /transferer.")
        if self.outcome == "no_redirect":
            return t(lang, "Ce commun n'est pas redirigé vers un autre : il n'y a rien à reporter.")
        if self.outcome == "expired":
            return t(lang, "Le délai pour reporter votre promesse est passé ({until}) : elle reste libérée.",
                     until=self.until.astimezone(zone).strftime("%Y-%m-%d %H:%M") if self.until else "")
        return t(lang, "Votre réponse a déjà été prise en compte.")


def agree_in(uow: UnitOfWork, commons_id: int, username: str, agree: bool, *, post_id: int,
             is_member: bool, now: datetime) -> TransferAnswer:
    """A cofunder's answer to a redirect, inside the caller's unit of work (see the module's policy)."""
    conn = uow.repo.conn
    cancellation = conn.execute(select(lt.lifecycle_cancellations)
                                .where(lt.lifecycle_cancellations.c.commons_id == commons_id)).first()
    if cancellation is None or cancellation.redirect_to is None:
        return TransferAnswer("no_redirect")
    cp = lt.lifecycle_cancelled_pledges
    row = next((r for r in conn.execute(select(cp).where(cp.c.commons_id == commons_id))
                if r.username.casefold() == username.casefold()), None)
    if row is None:
        return TransferAnswer("not_cofunder")
    round_ = uow.repo.round(uow.repo.commons_round_id(cancellation.redirect_to), lock=True)
    account = uow.repo.get_or_add_account(round_.id, row.username)
    credits = rules.credit_due(account, round_, now) if round_.is_open(now) else []
    uow.repo.append(credits)
    target = uow.repo.commons(cancellation.redirect_to)
    answer = dict(amount_cents=row.released_cents, target_title=target.title, currency=round_.currency)
    if row.agreed is not None:
        return TransferAnswer("already", balance_cents=account.balance_cents, **answer)
    until = _aware(cancellation.agree_until)
    if until is not None and now >= until:
        return TransferAnswer("expired", balance_cents=account.balance_cents, until=until, **answer)
    decided = dict(agreed=agree, agreement_post_id=post_id, decided_at=now)
    if not agree:
        conn.execute(update(cp).where(cp.c.id == row.id).values(**decided))
        return TransferAnswer("declined", balance_cents=account.balance_cents, **answer)
    # The moved pledge is keyed by the negated id of the agreement post: no forum post will ever
    # carry that id, so editing or deleting the `/transferer` post never touches the moved money.
    pledge = Pledge(-post_id, round_.id, target.id, row.username, version=1)
    ctx = rules.PledgeContext(round_, target, account, pledge, now, is_member, row.matching_eligible)
    try:
        outcome = rules.transfer_pledge(ctx, row.released_cents)
    except PledgeRefused as refusal:
        conn.execute(update(cp).where(cp.c.id == row.id).values(refusal=refusal.code, **decided))
        return TransferAnswer("refused", balance_cents=account.balance_cents, refusal=refusal, **answer)
    uow.repo.add(pledge)
    for entry in outcome.entries:
        entry.note = f"transfer from #{commons_id}"
    uow.repo.append(outcome.entries)
    uow.collect(outcome.events)
    conn.execute(update(cp).where(cp.c.id == row.id).values(moved_cents=row.released_cents, **decided))
    return TransferAnswer("moved", balance_cents=account.balance_cents, **answer)


def agree_transfer(svc: Service, commons_id: int, username: str, agree: bool, *, post_id: int,
                   is_member: bool = True) -> TransferAnswer:
    """`agree_in` in its own unit of work."""
    return svc.run(lambda uow: _commit(uow, agree_in(uow, commons_id, username, agree, post_id=post_id,
                                                     is_member=is_member, now=svc.clock())))


def cancellation(svc: Service, commons_id: int) -> dict | None:
    """The cancellation of a commons and each cofunder's answer (for `commons show` and tests)."""
    c, cp = lt.lifecycle_cancellations, lt.lifecycle_cancelled_pledges

    def use_case(uow: UnitOfWork):
        row = uow.repo.conn.execute(select(c).where(c.c.commons_id == commons_id)).first()
        if row is None:
            return None
        members = [dict(username=r.username, released_cents=r.released_cents, agreed=r.agreed,
                        moved_cents=r.moved_cents, refusal=r.refusal)
                   for r in uow.repo.conn.execute(select(cp).where(cp.c.commons_id == commons_id)
                                                  .order_by(cp.c.username))]
        return dict(commons_id=row.commons_id, reason=row.reason, cancelled_by=row.cancelled_by,
                    redirect_to=row.redirect_to, agree_until=_aware(row.agree_until), members=members)

    return svc.run(use_case)


