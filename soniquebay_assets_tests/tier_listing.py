"""A pytest plugin for test_tiers.py: writes the tests a run selects and deselects, with their marks, as JSON."""

from __future__ import annotations

import json
import os

_deselected: list = []


def _entry(item) -> dict:
    return {"id": item.nodeid, "marks": sorted({mark.name for mark in item.iter_markers()}),
            "fixtures": sorted(item.fixturenames)}


def pytest_deselected(items) -> None:
    _deselected.extend(_entry(item) for item in items)


def pytest_collection_finish(session) -> None:
    with open(os.environ["SONIQUEBAY_TIER_LISTING"], "w", encoding="utf-8") as out:
        json.dump({"selected": [_entry(item) for item in session.items], "deselected": _deselected}, out)
