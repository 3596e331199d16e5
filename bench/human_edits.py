"""Human edits on fiches interleaved with the bot's syncs (issue 7).

A person (the wiki account `Camille`, not the bot's) makes 1,000 edits on 10 fiches of a local
MediaWiki: a line of free text below the template call, a new value for an editorial field
(`organisations`, `prochaines_etapes`), a comment next to the bot's `collecte` figure. Meanwhile
pledges keep changing the fiches' figures, so `commons-sync worker` (its own process) rewrites
them, and every 20 s an operator's `commons-sync wiki sync --all` rewrites them too. Each side
saves on the revision it read (`baserevid`) and retries an edit conflict on the fresh revision.
At the end the bot syncs once more, then: every line and comment the person wrote is still there,
each editorial field holds the person's last value on the wiki and in the service, and every
parameter of every fiche equals the final state of the ledger.

    .venv/bin/python bench/human_edits.py                     # 1,000 edits
    .venv/bin/python bench/human_edits.py --edits 100 --fiches 5   # a quick look

Prints one JSON object; exits non-zero if a human change was lost or a fiche is wrong.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from commons_sync.devtools.local_mediawiki import LocalMediaWiki  # noqa: E402
from commons_sync.devtools.peer_faults import ServiceStack, human_edits_run  # noqa: E402
from commons_sync.mediawiki import Wiki, install  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--edits", type=int, default=1_000)
    parser.add_argument("--fiches", type=int, default=10)
    parser.add_argument("--pledges-per-second", type=float, default=4.0)
    parser.add_argument("--think-seconds", type=float, default=0.2,
                        help="between the person's read and save (more overlap with the bot)")
    parser.add_argument("--sync-all-every", type=float, default=20.0)
    parser.add_argument("--database", help="e.g. postgresql+psycopg://postgres@127.0.0.1:5432/cs_human")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="human-edits-"))
    try:
        with LocalMediaWiki(workers=2) as local, ServiceStack(workdir, local, database_url=args.database,
                                                                forum=False) as stack:
            install(Wiki.connect(local.api_url, local.bot_username, local.bot_password))
            human = Wiki.connect(local.api_url, local.human_username, local.human_password)
            reader = Wiki.connect(local.api_url, local.bot_username, local.bot_password)
            began = time.monotonic()
            result = human_edits_run(stack, human, reader, fiches=args.fiches, edits=args.edits,
                                     pledges_per_second=args.pledges_per_second,
                                     think_seconds=args.think_seconds, sync_all_every=args.sync_all_every)
            result = {"date": time.strftime("%Y-%m-%d"), "database": stack.database_url.split(":", 1)[0],
                      "seconds": round(time.monotonic() - began, 1), **result}
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result["lost_count"] = len(result["lost"])
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if result["lost"] or result["fiches_problems"] or result["ledger_problems"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
