"""Assets, one module per asset group (the stage registry names each group's module)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from soniquebay_assets.stages import STAGES

# asset group -> the module defining its assets: a run of a few groups imports only theirs (the covers and
# enrich modules alone cost ~0.5 s of imports that a catalog scan never needs).
MODULE_BY_GROUP = {stage.group: stage.asset_module for stage in STAGES}


def assets_of_groups(groups: Iterable[str]) -> list:
    """The asset definitions of these groups, importing no other asset module."""
    from dagster import load_assets_from_modules

    wanted = set(groups)
    modules = [importlib.import_module(f"{__name__}.{MODULE_BY_GROUP[g]}") for g in sorted(wanted)]
    return [a for a in load_assets_from_modules(modules) if set(a.group_names_by_key.values()) & wanted]


def all_assets() -> list:
    """Every asset definition of every stage."""
    return assets_of_groups(MODULE_BY_GROUP)


def stage_jobs_and_sensors() -> tuple[list, list]:
    """(jobs, sensors) the stage modules list in their JOBS and SENSORS beside their assets: a stage that starts
    its own runs (the playlists, re-made when the catalog changed) brings them in its module, like its assets."""
    jobs, sensors = [], []
    for module_name in dict.fromkeys(MODULE_BY_GROUP.values()):
        module = importlib.import_module(f"{__name__}.{module_name}")
        jobs += getattr(module, "JOBS", [])
        sensors += getattr(module, "SENSORS", [])
    return jobs, sensors
