"""The one Definitions object: assets, checks, jobs, sensors, schedules, resources and executor."""

from __future__ import annotations

from dagster import Definitions, load_assets_from_modules

from soniquebay_assets.dagster_defs.assets import catalog, covers, extract, scan
from soniquebay_assets.dagster_defs.jobs import scan_job
from soniquebay_assets.dagster_defs.resources import default_resources
from soniquebay_assets.dagster_defs.sensors import library_changes_sensor

# Each stage adds its asset module here.
ASSET_MODULES = [scan, extract, catalog, covers]

JOBS = [scan_job]
SENSORS = [library_changes_sensor]
SCHEDULES: list = []



def all_assets() -> list:
    """Every asset definition, for the CLI's in-process materialize."""
    return list(load_assets_from_modules(ASSET_MODULES))


defs = Definitions(
    assets=all_assets(),
    jobs=JOBS,
    sensors=SENSORS,
    schedules=SCHEDULES,
    resources=default_resources(),
)
