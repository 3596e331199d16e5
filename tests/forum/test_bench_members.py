"""The small version of `bench/webhook.py --only members`: distinct members' pledges at the default
API ceiling cost far fewer calls than members (one roster read, not one lookup each)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "webhook.py"


def test_twenty_distinct_members_cost_a_few_api_calls():
    spec = importlib.util.spec_from_file_location("bench_webhook", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.distinct_members(20)
    assert result["exact"] and result["cofunders"] == 20
    assert result["api_calls"] < 20 and result["rejected_429"] == 0
