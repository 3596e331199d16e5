"""A person edits fiches while the bot keeps rewriting them: no human change is lost.

The service's worker runs as its own process on the session's MediaWiki; pledges applied here
change the fiches' figures, and `commons-sync wiki sync --all` runs now and then as an operator
would. The person (the wiki account `Camille`) adds free text, changes editorial fields and puts a
comment next to a figure, saving on the revision read and retrying edit conflicts.
`bench/human_edits.py` is the full-size run (1,000 edits).
"""

from __future__ import annotations

import pytest

from commons_sync.devtools.peer_faults import ServiceStack, human_edits_run

pytestmark = pytest.mark.mediawiki


def test_human_changes_survive_the_bots_syncs_and_the_bots_fields_are_exact(installed, human, wiki, tmp_path):
    with ServiceStack(tmp_path, installed, forum=False) as stack:
        result = human_edits_run(stack, human, wiki, fiches=4, edits=100, pledges_per_second=8.0,
                                 think_seconds=0.0, sync_all_every=8.0, prefix=f"Relecture {tmp_path.name}")
    assert result["human_edits"] == 100
    # Each kind of edit was made, and the bot rewrote the fiches in between (several syncs).
    assert set(result["human_edits_by_kind"]) == {"note", "organisations", "prochaines_etapes", "comment"}
    assert result["bot_revisions"] > result["fiches"] and result["wiki_sync_all_runs"] >= 1, result
    assert result["lost"] == []
    assert result["fiches_problems"] == []
    assert result["ledger_problems"] == []
