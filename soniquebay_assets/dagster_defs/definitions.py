"""The one Definitions object: assets, checks, jobs, sensors, schedules, resources and executor."""

from __future__ import annotations

from dagster import Definitions, load_assets_from_modules

from soniquebay_assets.dagster_defs.assets import catalog, covers, enrich, extract, scan
from soniquebay_assets.dagster_defs.assets import deferred as deferred_assets
from soniquebay_assets.dagster_defs.assets import online as online_assets
from soniquebay_assets.dagster_defs.assets import vectors as vector_assets
from soniquebay_assets.dagster_defs.executor import build_executor
from soniquebay_assets.dagster_defs.jobs import scan_job
from soniquebay_assets.dagster_defs.resources import default_resources
from soniquebay_assets.dagster_defs.schedules import all_schedule_definitions
from soniquebay_assets.dagster_defs.sensors import library_changes_sensor

# Each stage adds its asset module here.
ASSET_MODULES = [scan, extract, catalog, covers, enrich]

ASSET_MODULES += [deferred_assets]  # deferred-queue upkeep (issue 6)
ASSET_MODULES += [vector_assets]  # track embeddings + validate_vectors check (issue 4)
ASSET_MODULES += [online_assets]  # MusicBrainz / Last.fm / AcoustID metadata

JOBS = [scan_job]
SENSORS = [library_changes_sensor]
SCHEDULES: list = []



def all_assets() -> list:
    """Every asset definition, for the CLI's in-process materialize."""
    return list(load_assets_from_modules(ASSET_MODULES))


# Deferred refresh per kind (only kinds whose assets exist), failed-work retry, daily maintenance.
_DEFERRED_JOBS, _DEFERRED_SCHEDULES, _DEFERRED_SENSORS = all_schedule_definitions(
    k.to_user_string() for a in all_assets() for k in a.keys
)

defs = Definitions(
    assets=all_assets(),
    jobs=JOBS + _DEFERRED_JOBS,
    sensors=SENSORS + _DEFERRED_SENSORS,
    schedules=SCHEDULES + _DEFERRED_SCHEDULES,
    resources=default_resources(),
    executor=build_executor(),  # in-process unless SONIQUEBAY_EXECUTOR=celery or run config selects it
)
