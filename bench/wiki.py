"""Benchmark: 2,000 fiches on a real local MediaWiki, and the wiki edits a burst of pledges makes.

    .venv/bin/python bench/wiki.py                 # 2,000 fiches, a burst of 1,000 pledges
    .venv/bin/python bench/wiki.py --fiches 100 --burst 100   # a quick run

Prints one JSON object: first sync (time, edits), the no-change pass (edits, read queries per 50
pages), and the burst (pledges, fiche edits, seconds until the fiche was exact).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from commons_sync.devtools.local_mediawiki import LocalMediaWiki  # noqa: E402
from commons_sync.mediawiki import Wiki, fiche, install  # noqa: E402
from commons_sync.service import handlers as h  # noqa: E402
from commons_sync.service import wiki_sync  # noqa: E402
from commons_sync.service.worker import deliver_outbox  # noqa: E402
from commons_sync.storage.database import make_engine, upgrade  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fiches", type=int, default=2_000)
    parser.add_argument("--burst", type=int, default=1_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, LocalMediaWiki(workers=2) as local:
        connect = lambda: Wiki.connect(local.api_url, local.bot_username, local.bot_password)  # noqa: E731
        install(connect())
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        svc = h.Service(engine)
        h.create_round(svc, h.RoundSpec(slug="bench", name="Banc d'essai", allocation_cents=10_000_000,
                                        group="lieux"))
        for n in range(args.fiches):
            h.open_commons(svc, h.CommonsSpec(round_slug="bench", title=f"Commun numéro {n}",
                                              goal_cents=100_000 + n, topic_id=10_000 + n, referent="claire"))

        wiki = connect()
        started = time.perf_counter()
        first = wiki_sync.sync_all_fiches(svc, wiki)
        first_seconds = time.perf_counter() - started

        wiki = connect()
        before = wiki.request_count
        started = time.perf_counter()
        again = wiki_sync.sync_all_fiches(svc, wiki)
        again_seconds = time.perf_counter() - started
        queries = wiki.request_count - before

        # A burst of pledges on one commons while a worker loop keeps the wiki in step.
        target = h.show_commons(svc, 1)
        title = target["wiki_title"]
        revisions_before = connect().revision_count(title)
        senders = wiki_sync.WikiSenders(svc, connect).senders()
        stop = threading.Event()

        def worker_loop() -> None:
            while not stop.is_set():
                deliver_outbox(svc, senders, flush=False)
                stop.wait(0.5)

        thread = threading.Thread(target=worker_loop)
        thread.start()
        started = time.perf_counter()
        for n in range(args.burst):
            h.apply_post(svc, h.PostChange(post_id=1_000_000 + n, topic_id=target["topic_id"],
                                           username=f"lieu-{n % 200}", kind="snapshot", version=1,
                                           amount_cents=100, post_number=n + 2))
        burst_seconds = time.perf_counter() - started
        expected = str(args.burst)  # 1 € each
        reader = connect()
        while fiche.read_fiche(reader.read_page(title).text)["collecte"] != expected:
            time.sleep(0.2)
        exact_after = time.perf_counter() - started
        stop.set()
        thread.join()
        edits = reader.revision_count(title) - revisions_before
        print(json.dumps({
            "fiches": args.fiches,
            "first_sync": {"seconds": round(first_seconds, 1), "edited": first["edited"],
                           "fiches_per_second": round(args.fiches / first_seconds, 1)},
            "no_change_pass": {"seconds": round(again_seconds, 1), "edited": again["edited"],
                               "requests": queries, "requests_per_50_pages": round(queries * 50 / args.fiches, 2)},
            "burst": {"pledges": args.burst, "seconds": round(burst_seconds, 1), "fiche_edits": edits,
                      "fiche_exact_after_seconds": round(exact_after, 1)},
        }, indent=2))
        engine.dispose()


if __name__ == "__main__":
    main()
