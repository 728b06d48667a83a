"""`make check` is lint plus the fast tier, and the fast tier stays within its budget: counted, not timed."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from soniquebay_assets_tests.conftest import FULL_SUITE_MARKS

ROOT = Path(__file__).resolve().parent.parent
# The fast tier ran in about 2.5 minutes on two cores with 551 tests. A contributor adding tests past this count
# times `make check` again (it must stay under 3 minutes) and raises the count, or marks the slow ones. 600 -> 620:
# the 13 fast tests of tag write-back and the stage switch take 0.3 s together (their --durations, load 9).
FAST_TIER_MAX_TESTS = 620


def _recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.split(":")[0] == target)
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


@pytest.mark.slow  # collects the whole suite in a child pytest (about 10 s of CPU); CI keeps the tier honest
def test_make_check_is_lint_and_the_fast_tier_within_its_budget(tmp_path):
    lint, tests = _recipe("check")
    assert lint == _recipe("lint")[0]
    words = shlex.split(tests)
    assert words[:2] == ["HF_HUB_OFFLINE=1", "$(PYTHON)"] and words[2:5] == ["-m", "pytest", "-q"]
    listing = tmp_path / "tiers.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-p", "soniquebay_assets_tests.tier_listing", *words[5:]], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "SONIQUEBAY_TIER_LISTING": str(listing)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    tiers = json.loads(listing.read_text(encoding="utf-8"))
    selected, deselected = tiers["selected"], tiers["deselected"]
    heavy = [t["id"] for t in selected if set(t["marks"]) & set(FULL_SUITE_MARKS)]
    assert not heavy, f"`make check` would run tests of the full suite only: {heavy[:10]}"
    left_out = [t["id"] for t in deselected if not set(t["marks"]) & set(FULL_SUITE_MARKS)]
    assert not left_out, f"`make check` leaves out tests of no other tier: {left_out[:10]}"
    assert any("test_stage_registry" in t["id"] for t in selected)
    on_postgresql = [t["id"] for t in selected if "pg_server" in t["fixtures"] or "[postgresql" in t["id"]]
    assert not on_postgresql, on_postgresql[:10]
    assert len(selected) <= FAST_TIER_MAX_TESTS, (
        f"the fast tier holds {len(selected)} tests, over its budget of {FAST_TIER_MAX_TESTS}: time `make check` "
        "(under 3 minutes on two cores) and raise the budget, or mark the slow tests @pytest.mark.slow")
