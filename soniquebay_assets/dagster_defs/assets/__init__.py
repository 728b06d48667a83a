"""Assets, one module per asset group."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

# asset group -> the module defining its assets: a run of a few groups imports only theirs (the covers and
# enrich modules alone cost ~0.5 s of imports that a catalog scan never needs).
MODULE_BY_GROUP = {
    "scan": "scan", "extract": "extract", "insert": "catalog", "cover": "covers", "metadata": "enrich",
    "vector": "vectors", "online": "online", "deferred": "deferred", "playlists": "playlists",
}


def assets_of_groups(groups: Iterable[str]) -> list:
    """The asset definitions of these groups, importing no other asset module."""
    from dagster import load_assets_from_modules

    wanted = set(groups)
    modules = [importlib.import_module(f"{__name__}.{MODULE_BY_GROUP[g]}") for g in sorted(wanted)]
    return [a for a in load_assets_from_modules(modules) if set(a.group_names_by_key.values()) & wanted]
