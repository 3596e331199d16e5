"""`commons-sync demo`: replay the 2018 experiment through the service layer and show the results."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console
from rich.progress import Progress

from commons_sync.config import Settings
from commons_sync.engine.errors import InvalidOperation
from commons_sync.i18n import t
from commons_sync.service import handlers
from commons_sync.storage.database import make_engine, upgrade

from . import movilab

ROUND_SLUG = "cobudget-2018"


def replay(svc: handlers.Service, data: dict | None = None, *, slug: str = ROUND_SLUG,
           progress=None) -> dict[int, int]:
    """Create the 2018 round, its proposals and every pledge; return plan index → commons id."""
    the_plan = movilab.plan(data)
    now = svc.clock()
    handlers.create_round(svc, handlers.RoundSpec(
        slug=slug, name=the_plan.round_name, allocation_cents=the_plan.allocation_cents,
        group="tiers-lieux", currency=the_plan.currency, opens_at=now - timedelta(days=1),
        closes_at=now + timedelta(days=29)))
    ids: dict[int, int] = {}
    for index, planned in enumerate(the_plan.commons):
        commons = handlers.open_commons(svc, handlers.CommonsSpec(
            round_slug=slug, title=planned.title, goal_cents=planned.goal_cents,
            topic_id=1000 + index))
        ids[index] = commons.id
    task = progress.add_task("pledges", total=len(the_plan.pledges)) if progress else None
    for number, pledge in enumerate(the_plan.pledges, start=1):
        outcome = handlers.apply_post(svc, handlers.PostChange(
            post_id=100_000 + number, topic_id=1000 + pledge.commons_index, username=pledge.member,
            kind="snapshot", version=1, amount_cents=pledge.amount_cents, post_number=1 + number))
        if outcome.refused:
            raise InvalidOperation(outcome.refused.reason)
        if progress:
            progress.advance(task)
    return ids


def run_demo(settings: Settings, console: Console) -> None:
    lang = settings.language
    engine = make_engine(settings.database_url)
    upgrade(engine)
    svc = handlers.Service(engine)
    if any(r["slug"] == ROUND_SLUG for r in handlers.list_rounds(svc)):
        console.print(t(lang, "La campagne de démonstration existe déjà dans cette base : résultats actuels."), style="dim")
    else:
        with Progress(console=Console(stderr=True), transient=True) as progress:
            replay(svc, progress=progress)
    from commons_sync.cli import render_results

    round_info = handlers.show_round(svc, ROUND_SLUG)
    console.print(f"[bold]{round_info['name']}[/bold]")
    console.print(render_results(handlers.results(svc, ROUND_SLUG), round_info["currency"], lang), end="")
