"""The money rules, in one place: who may pledge what, matching, statuses, close and release.

Each function takes the domain objects the service loaded (under the database's lock), changes
their projections, and returns the ledger entries and events. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from . import events
from .errors import EngineError, InvalidOperation, PledgeRefused
from .model import (
    Commons,
    Contribution,
    Entry,
    EntryKind,
    MemberAccount,
    Outcome,
    PaymentState,
    Pledge,
    PledgeState,
    Round,
    Status,
)

ACCEPTING = (Status.FUNDING, Status.FUNDED)


@dataclass
class PledgeContext:
    """Everything a pledge decision reads: loaded and locked by the service."""

    round: Round
    commons: Commons
    account: MemberAccount
    pledge: Pledge
    now: datetime
    is_member: bool
    matching_eligible: bool = False


@dataclass(frozen=True)
class Snapshot:
    """A pledge post as the forum showed it at one version.

    `amount_cents` is None when the post has no pledge line; `error` is the reason code when its
    line could not be read (malformed or ambiguous amount, several lines).
    """

    version: int
    amount_cents: int | None
    error: str | None = None
    deleted: bool = False
    error_params: tuple = ()


# ---------------------------------------------------------------------------------------------
# Allocations


def credit_due(account: MemberAccount, round_: Round, now: datetime) -> list[Entry]:
    """Credit the allocation periods that have started, expiring the unspent rest when asked."""
    entries: list[Entry] = []
    due = round_.periods_due(now)
    while account.periods_credited < due:
        if account.periods_credited >= 1 and round_.unspent == "expire" and account.balance_cents > 0:
            expired = account.balance_cents
            account.credited_cents -= expired
            entries.append(_entry(EntryKind.EXPIRY, -expired, round_, account=account, at=now,
                                  note=f"period {account.periods_credited}"))
        account.credited_cents += round_.allocation_cents
        account.periods_credited += 1
        entries.append(_entry(EntryKind.ALLOCATION, round_.allocation_cents, round_, account=account,
                              at=now, note=f"period {account.periods_credited}"))
    return entries


def grant(account: MemberAccount, round_: Round, amount_cents: int, *, set_to: bool,
          reason: str | None, now: datetime) -> list[Entry]:
    """Add to a member's allocation, or set it, with the reason written in the ledger."""
    if round_.closed_at is not None:
        raise InvalidOperation("round_already_closed", round=round_.slug)
    entries = credit_due(account, round_, now)
    delta = amount_cents - account.credited_cents if set_to else amount_cents
    if account.credited_cents + delta < account.pledged_cents:
        raise InvalidOperation("set_below_pledged", pledged=account.pledged_cents)
    if delta:
        account.credited_cents += delta
        entries.append(_entry(EntryKind.GRANT, delta, round_, account=account, at=now, note=reason))
    return entries


# ---------------------------------------------------------------------------------------------
# Pledge posts


def apply_snapshot(ctx: PledgeContext, snapshot: Snapshot) -> Outcome:
    """Apply one version of a pledge post: an older version never overrides a newer one."""
    pledge = ctx.pledge
    if pledge.state is PledgeState.RELEASED:
        return Outcome()
    if snapshot.version < pledge.version:
        return _apply_older_version(ctx, snapshot)
    same = (pledge.requested_cents, pledge.requested_error) == (snapshot.amount_cents, snapshot.error)
    if snapshot.version == pledge.version and same and (pledge.deleted or not snapshot.deleted):
        return Outcome()  # the same snapshot twice, or a refusal that stands until the post changes
    pledge.version = snapshot.version
    pledge.requested_cents = snapshot.amount_cents
    pledge.requested_error = snapshot.error
    if snapshot.deleted:
        return _withdraw_for_deletion(ctx)
    if pledge.deleted:
        return Outcome()  # a deleted post's new text counts when the post is recovered
    if snapshot.error is not None:
        return _refuse(ctx, PledgeRefused(snapshot.error, **dict(snapshot.error_params)))
    return _judge(ctx, snapshot.amount_cents or 0, snapshot.version)


def _apply_older_version(ctx: PledgeContext, snapshot: Snapshot) -> Outcome:
    """A late older version matters only when the newest was refused: then the amount in force is
    the one an in-order arrival would have left, i.e. that of the newest version that was
    acceptable. So the final state does not depend on the order the versions arrived in.
    """
    pledge = ctx.pledge
    if pledge.refusal is None or pledge.deleted or snapshot.deleted or snapshot.error is not None:
        return Outcome()
    if snapshot.version <= pledge.kept_version:
        return Outcome()
    target = snapshot.amount_cents or 0
    try:
        check_pledge_change(ctx, target)
    except PledgeRefused:
        return Outcome()  # the refusal of the newest version stands and was already told
    refusal = pledge.refusal
    pledge.kept_version = snapshot.version
    outcome = _set_amount(ctx, target)
    pledge.refusal = refusal
    return outcome


def apply_destroyed(ctx: PledgeContext) -> Outcome:
    """The post was deleted (by its author or staff): its pledge is withdrawn."""
    if ctx.pledge.deleted or ctx.pledge.state is PledgeState.RELEASED:
        return Outcome()
    return _withdraw_for_deletion(ctx)


def apply_recovered(ctx: PledgeContext) -> Outcome:
    """The post was recovered: its pledge comes back if it is still affordable."""
    pledge = ctx.pledge
    if not pledge.deleted or pledge.state is PledgeState.RELEASED:
        return Outcome()
    pledge.deleted = False
    if pledge.requested_error is not None:
        return _refuse(ctx, PledgeRefused(pledge.requested_error))
    return _judge(ctx, pledge.requested_cents or 0, pledge.version)


def _withdraw_for_deletion(ctx: PledgeContext) -> Outcome:
    ctx.pledge.deleted = True
    if ctx.pledge.amount_cents == 0:
        ctx.pledge.refusal = None
        return Outcome()
    if not ctx.round.is_open(ctx.now):
        return Outcome()  # after close the money is settled; the deletion is only recorded
    return _set_amount(ctx, 0)


def _judge(ctx: PledgeContext, target_cents: int, version: int) -> Outcome:
    try:
        check_pledge_change(ctx, target_cents)
    except PledgeRefused as refusal:
        return _refuse(ctx, refusal)
    ctx.pledge.kept_version = version
    return _set_amount(ctx, target_cents)


def check_pledge_change(ctx: PledgeContext, target_cents: int) -> None:
    """Raise `PledgeRefused` when moving the pledge to `target_cents` breaks a rule."""
    pledge, round_, commons, account = ctx.pledge, ctx.round, ctx.commons, ctx.account
    if target_cents == pledge.amount_cents:
        return
    if round_.closed_at is not None or (round_.closes_at is not None and ctx.now >= round_.closes_at):
        raise PledgeRefused("round_closed", round=round_.name)
    if ctx.now < round_.opens_at:
        raise PledgeRefused("round_not_started", round=round_.name, opens_at=round_.opens_at)
    if target_cents < pledge.amount_cents:
        return  # lowering or withdrawing is always allowed while the round is open
    if not ctx.is_member:
        raise PledgeRefused("not_member", group=round_.group)
    if commons.status not in ACCEPTING:
        raise PledgeRefused("commons_not_open", status=commons.status.value)
    if pledge.post_number is not None and pledge.post_number <= commons.first_post_number:
        raise PledgeRefused("before_commons")
    delta = target_cents - pledge.amount_cents
    if delta > account.balance_cents:
        raise PledgeRefused("over_balance", amount=target_cents, balance=account.balance_cents)
    ceiling = commons.ceiling_cents
    others = commons.raised_cents - pledge.amount_cents - pledge.matched_cents
    if ceiling is not None and others + target_cents > ceiling:
        raise PledgeRefused("over_cap", amount=target_cents, room=max(0, ceiling - others))


def _set_amount(ctx: PledgeContext, target_cents: int) -> Outcome:
    pledge, round_, commons, account = ctx.pledge, ctx.round, ctx.commons, ctx.account
    previous, previous_match = pledge.amount_cents, pledge.matched_cents
    new_match = _matching_for(ctx, target_cents)
    out = Outcome()
    funded_before = commons.status is Status.FUNDED
    if target_cents != previous:
        out.entries.append(_entry(EntryKind.PLEDGE, target_cents - previous, round_, account=account,
                                  commons=commons, pledge=pledge, at=ctx.now))
    if new_match != previous_match:
        out.entries.append(_entry(EntryKind.MATCHING, new_match - previous_match, round_,
                                  commons=commons, pledge=pledge, at=ctx.now))
    account.pledged_cents += target_cents - previous
    commons.pledged_cents += target_cents - previous
    commons.matched_cents += new_match - previous_match
    round_.matching_used_cents += new_match - previous_match
    pledge.amount_cents, pledge.matched_cents = target_cents, new_match
    pledge.state = PledgeState.LIVE if target_cents else PledgeState.NONE
    pledge.refusal = None
    if target_cents and previous == 0:
        pledge.matching_eligible = ctx.matching_eligible
    if target_cents:
        out.events.append(events.PledgeAccepted(pledge.post_id, commons.id, pledge.username,
                                                target_cents, previous))
    elif previous:
        out.events.append(events.PledgeWithdrawn(pledge.post_id, commons.id, pledge.username, previous))
    if out.entries:
        out.extend(_figures_changed(commons, round_, ctx.now, funded_before))
    return out


def _matching_for(ctx: PledgeContext, target_cents: int) -> int:
    """Matching this pledge carries at `target_cents`: ratio × amount within pool, caps and room."""
    rule, pledge, commons = ctx.round.matching, ctx.pledge, ctx.commons
    if rule is None or target_cents == 0:
        return 0
    eligible = ctx.matching_eligible if pledge.amount_cents == 0 else pledge.matching_eligible
    if not eligible:
        return 0
    limits = [rule.wanted(target_cents), ctx.round.matching_left_cents + pledge.matched_cents]
    if rule.cap_per_commons_cents is not None:
        limits.append(rule.cap_per_commons_cents - commons.matched_cents + pledge.matched_cents)
    ceiling = commons.ceiling_cents
    if ceiling is not None:
        others = commons.raised_cents - pledge.amount_cents - pledge.matched_cents
        limits.append(ceiling - others - target_cents)
    return max(0, min(limits))


def _refuse(ctx: PledgeContext, refusal: EngineError) -> Outcome:
    ctx.pledge.refusal = refusal.code
    return Outcome(events=[events.PledgeRefused(
        ctx.pledge.post_id, ctx.commons.id, ctx.pledge.username, refusal.code,
        ctx.account.balance_cents, ctx.pledge.amount_cents, ctx.pledge.version, dict(refusal.params),
    )])


# ---------------------------------------------------------------------------------------------
# Commons


def refresh_status(commons: Commons, round_: Round) -> None:
    """Reaching the goal makes a commons `financé` at once; falling below it while open undoes it."""
    if commons.status not in ACCEPTING or commons.goal_cents is None or round_.closed_at is not None:
        return
    commons.status = Status.FUNDED if commons.raised_cents >= commons.goal_cents else Status.FUNDING


def _figures_changed(commons: Commons, round_: Round, now: datetime, funded_before: bool) -> Outcome:
    refresh_status(commons, round_)
    commons.figures_changed_at = now
    out = Outcome(events=[events.FiguresChanged(commons.id, round_.id)])
    if commons.status is Status.FUNDED and not funded_before:
        out.events.append(events.CommonsFunded(commons.id, round_.id))
    return out


def new_commons(round_: Round, title: str, goal_cents: int | None, cap_cents: int | None,
                now: datetime, **details) -> Commons:
    """A commons in funding (or an idea without a goal), after checking its figures."""
    if round_.closed_at is not None:
        raise InvalidOperation("round_already_closed", round=round_.slug)
    if goal_cents is None and cap_cents is not None:
        raise InvalidOperation("goal_required")
    if cap_cents is not None and goal_cents is not None and cap_cents < goal_cents:
        raise InvalidOperation("cap_below_goal", goal=goal_cents, cap=cap_cents)
    status = Status.IDEA if goal_cents is None else Status.FUNDING
    return Commons(round_id=round_.id, title=title, goal_cents=goal_cents, cap_cents=cap_cents,
                   status=status, figures_changed_at=now, **details)


def set_goal(commons: Commons, round_: Round, goal_cents: int, cap_cents: int | None,
             now: datetime) -> Outcome:
    """Give an idea its goal (or change the goal): it becomes open for pledges."""
    if cap_cents is not None and cap_cents < goal_cents:
        raise InvalidOperation("cap_below_goal", goal=goal_cents, cap=cap_cents)
    ceiling = cap_cents if cap_cents is not None else goal_cents
    if commons.raised_cents > ceiling:
        raise InvalidOperation("contribution_over_cap", room=0)
    funded_before = commons.status is Status.FUNDED
    commons.goal_cents, commons.cap_cents = goal_cents, cap_cents
    if commons.status is Status.IDEA:
        commons.status = Status.FUNDING
    return _figures_changed(commons, round_, now, funded_before)


def add_contribution(commons: Commons, round_: Round, contribution: Contribution,
                     now: datetime) -> Outcome:
    """Staff record money from outside the forum; it counts toward the goal, never above the cap."""
    if contribution.amount_cents <= 0:
        raise InvalidOperation("amount_not_positive")
    if commons.status in (Status.CANCELLED, Status.UNFUNDED):
        raise InvalidOperation("commons_not_open", status=commons.status.value)
    ceiling = commons.ceiling_cents
    if ceiling is not None and commons.raised_cents + contribution.amount_cents > ceiling:
        raise InvalidOperation("contribution_over_cap", room=max(0, ceiling - commons.raised_cents))
    funded_before = commons.status is Status.FUNDED
    commons.contributed_cents += contribution.amount_cents
    entry = _entry(EntryKind.CONTRIBUTION, contribution.amount_cents, round_, commons=commons,
                   at=now, note=contribution.source)
    entry.username = contribution.username
    entry.contribution_id = contribution.id
    out = Outcome(entries=[entry],
                  events=[events.ContributionRecorded(contribution.id, commons.id,
                                                      contribution.amount_cents)])
    return out.extend(_figures_changed(commons, round_, now, funded_before))


def advance_payment(current: PaymentState, target: PaymentState) -> PaymentState:
    """Money is followed forward only: pledged → invoiced → paid."""
    if target.rank() <= current.rank():
        raise InvalidOperation("payment_backwards", current=current.value, target=target.value)
    return target


# ---------------------------------------------------------------------------------------------
# Close and release


@dataclass(frozen=True)
class Closing:
    """The decision for one commons at the round's close."""

    commons_id: int
    status: Status
    release: bool


def decide_closing(round_: Round, commons: Commons) -> Closing:
    """Funded at or above goal; partially funded at or above the threshold; else not funded."""
    if commons.status in (Status.IDEA, Status.CANCELLED, Status.DONE):
        return Closing(commons.id, commons.status, False)
    goal = commons.goal_cents or 0
    if commons.raised_cents >= goal:
        return Closing(commons.id, Status.FUNDED, False)
    threshold = round_.partial_threshold_pct
    if threshold is not None and commons.raised_cents * 100 >= threshold * goal:
        return Closing(commons.id, Status.PARTIAL, False)
    return Closing(commons.id, Status.UNFUNDED, True)


def release_pledge(pledge: Pledge, round_: Round, commons: Commons,
                   account: MemberAccount | None, now: datetime, note: str) -> list[Entry]:
    """Release a live pledge by reversing entries: its amount to the member, its matching to the pool."""
    entries: list[Entry] = []
    if pledge.state is not PledgeState.LIVE:
        pledge.state = PledgeState.RELEASED
        return entries
    entries.append(Entry(EntryKind.RELEASE, -pledge.amount_cents, round_.id, commons.id,
                         pledge.username, pledge.post_id, note=note, at=now))
    if pledge.matched_cents:
        entries.append(Entry(EntryKind.MATCHING_RELEASE, -pledge.matched_cents, round_.id, commons.id,
                             None, pledge.post_id, note=note, at=now))
    if account is not None:
        account.pledged_cents -= pledge.amount_cents
    commons.pledged_cents -= pledge.amount_cents
    commons.matched_cents -= pledge.matched_cents
    round_.matching_used_cents -= pledge.matched_cents
    pledge.amount_cents = pledge.matched_cents = 0
    pledge.state = PledgeState.RELEASED
    return entries


def _entry(kind: EntryKind, amount: int, round_: Round, *, account: MemberAccount | None = None,
           commons: Commons | None = None, pledge: Pledge | None = None, at: datetime | None = None,
           note: str | None = None) -> Entry:
    return Entry(kind=kind, amount_cents=amount, round_id=round_.id,
                 commons_id=commons.id if commons else None,
                 username=(account.username if account else (pledge.username if pledge and kind is EntryKind.PLEDGE else None)),
                 pledge_post_id=pledge.post_id if pledge else None, note=note, at=at)


# ---------------------------------------------------------------------------------------------
# Cancel and redirect


CANCELLABLE = (Status.IDEA, Status.FUNDING, Status.FUNDED, Status.PARTIAL, Status.UNFUNDED)


def cancel_commons(commons: Commons, round_: Round, pledges: list[Pledge],
                   accounts: dict[str, MemberAccount], now: datetime, note: str) -> Outcome:
    """Cancel a commons: status `annulé`, each live pledge released by reversing entries.

    `accounts` maps usernames to their accounts in the round (members whose money comes back).
    Contributions stay recorded (staff settle them with whoever paid). Nothing is deleted.
    """
    if commons.status not in CANCELLABLE:
        raise InvalidOperation("commons_not_open", status=commons.status.value)
    out = Outcome()
    for pledge in pledges:
        out.entries.extend(release_pledge(pledge, round_, commons, accounts.get(pledge.username),
                                          now, note))
    commons.status = Status.CANCELLED
    commons.figures_changed_at = now
    out.events.append(events.PledgesReleased(commons.id, round_.id))
    out.events.append(events.FiguresChanged(commons.id, round_.id))
    return out


def transfer_pledge(ctx: PledgeContext, amount_cents: int) -> Outcome:
    """Pledge to another commons what a cancelled one gave back to a member who agreed to move it.

    The same rules as a pledge post (round open, member, the target accepting, its cap, the
    member's balance): raises `PledgeRefused` and changes nothing when one is broken.
    """
    check_pledge_change(ctx, amount_cents)
    ctx.pledge.kept_version = ctx.pledge.version
    return _set_amount(ctx, amount_cents)
