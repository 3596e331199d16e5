"""The fuzz targets of `fuzz_targets.py`, a few hundred cases each, in every test run.

`bench/fuzz.py --cases 100000` runs the same targets at scale (docs/RELIABILITY.md).
"""

from __future__ import annotations

import pytest

from . import fuzz_targets

CASES = {"amounts": 400, "pledge_texts": 200, "webhook": 300, "webhook_http": 60, "wiki": 300, "mime": 400}


@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
def test_target_holds(name):
    outcome = fuzz_targets.TARGETS[name](CASES[name], seed=7)
    assert outcome.failures == []
    assert outcome.cases >= CASES[name] // 2  # hypothesis ran the cases asked for, not a handful


def test_webhook_fuzzing_reaches_every_kind_of_answer():
    outcome = fuzz_targets.run_webhook(300, seed=11)
    assert outcome.failures == []
    assert {200, 202, 400, 401} <= set(outcome.notes["statuses"])


def test_pledge_fuzzing_also_changes_the_ledger_when_the_pledge_is_valid():
    outcome = fuzz_targets.run_pledge_texts(200, seed=3)
    assert outcome.failures == []
    assert outcome.notes["ledger_changes"] > 0  # the property is not vacuous
