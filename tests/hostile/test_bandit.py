"""`bandit` over the package: no finding of medium or high severity unless explained on its line
with `# nosec BXXX: reason` (bandit then leaves it out). Low findings (asserts, subprocess in
the dev tools, `random` for jitter) are listed by `bandit -r commons_sync` and not gated."""

from __future__ import annotations

import json
import os
import shutil
import subprocess  # nosec B404: runs bandit, our own tool
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bandit() -> str:
    found = Path(sys.executable).with_name("bandit")
    if found.exists():
        return str(found)
    on_path = shutil.which("bandit")
    if on_path:
        return on_path
    message = "bandit is not installed (add it to the test extras)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def test_bandit_finds_nothing_of_medium_or_high_severity_unexplained():
    result = subprocess.run([_bandit(), "-r", "commons_sync", "-q", "-f", "json"], cwd=ROOT,  # nosec B603
                            capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(result.stdout)
    assert report["errors"] == []
    assert report["metrics"]["_totals"]["loc"] > 1000  # it did read the package
    serious = [f"{r['test_id']} {r['filename']}:{r['line_number']} {r['issue_text']}"
               for r in report["results"] if r["issue_severity"] in ("MEDIUM", "HIGH")]
    assert serious == [], "explain each with `# nosec BXXX: reason` on its line, or fix it:\n" + "\n".join(serious)
