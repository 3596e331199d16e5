"""`commons-sync demo`: replay the 2018 experiment through the service layer and show the results."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from commons_sync.config import Settings
from commons_sync.engine.errors import InvalidOperation
from commons_sync.i18n import t
from commons_sync.service import handlers

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


def run_demo(settings: Settings, console: Console, *, with_wiki: bool = True,
             exit_after_replay: bool = False, database_path: Path | None = None) -> "DemoStack":
    """Start the whole stack, replay 2018 through the forum, print where to look, wait for Ctrl-C."""
    from .stack import DemoStack, wiki_available

    lang = settings.language
    err = Console(stderr=True)
    logging.getLogger("commons_sync").setLevel(logging.ERROR)  # the demo says itself what is off
    if with_wiki and not wiki_available():
        err.print(t(lang, "MediaWiki et PHP ne sont pas installés : la démonstration tourne sans wiki "
                          "(installez-les avec « bash scripts/setup.sh », ou passez --no-wiki)."), style="yellow")
        with_wiki = False
    elif not with_wiki:
        err.print(t(lang, "Sans wiki (--no-wiki) : les fiches et la page de résultats ne sont pas publiées."),
                  style="yellow")
    database_path = database_path or Path("commons-sync-demo.db").resolve()
    with DemoStack(database_path, lang=lang, with_wiki=with_wiki) as stack:
        with Progress(console=err, transient=True) as progress:
            start = progress.add_task(t(lang, "Démarrage (forum, wiki, service)"), total=None)
            tasks = {}

            def advance(kind: str, done: int, total: int) -> None:
                progress.update(start, visible=False)
                if kind not in tasks:
                    label = {"topics": t(lang, "Sujets et communs"), "pledges": t(lang, "Promesses postées")}[kind]
                    tasks[kind] = progress.add_task(label, total=total)
                progress.update(tasks[kind], completed=done)

            stack.replay(progress=advance)
        _print_where_to_look(stack, console, lang)
        if exit_after_replay:
            return stack
        try:
            stack.run_worker_in_background()
            console.print(t(lang, "La démonstration tourne ; Ctrl-C pour l'arrêter."))
            threading.Event().wait()
        except KeyboardInterrupt:
            console.print(t(lang, "Arrêt…"))
    return stack


def _print_where_to_look(stack, console: Console, lang: str) -> None:
    from commons_sync.cli import render_results
    from commons_sync.service.wiki_sync import results_title

    round_info = handlers.show_round(stack.svc, ROUND_SLUG)
    console.print(f"[bold]{round_info['name']}[/bold]")
    console.print(render_results(handlers.results(stack.svc, ROUND_SLUG), round_info["currency"], lang), end="")
    colon = " :" if lang == "fr" else ":"
    where = t(lang, "Où regarder")
    console.print(f"[bold]{where}[/bold]")
    forum = t(lang, "Forum (double de Discourse)")
    console.print(f"  {forum}{colon} {stack.forum.url}/")
    for topic in stack.topics:
        console.print(f"    {stack.forum.url}/t/{topic.topic_id}  {topic.title}")
    if stack.wiki is not None:
        round_ = stack.svc.run(lambda uow: uow.repo.round_by_slug(ROUND_SLUG))
        results_page, fiches = t(lang, "Page de résultats du wiki"), t(lang, "Fiches communs")
        console.print(f"  {results_page}{colon} {stack.wiki_page_url(results_title(round_))}")
        console.print(f"  {fiches}{colon} {stack.wiki_page_url('Catégorie:Communs')}")
    triage, login_as = t(lang, "Tri des propositions (équipe)"), t(lang, "connexion en tant que")
    console.print(f"  {triage}{colon} {stack.app.url}/staff/triage ({login_as} « animation »)")
    api, database = t(lang, "API publique"), t(lang, "Base de données")
    console.print(f"  {api}{colon} {stack.app.url}/api/v1/rounds/{ROUND_SLUG}")
    console.print(f"  {database}{colon} {stack.database_path}")
