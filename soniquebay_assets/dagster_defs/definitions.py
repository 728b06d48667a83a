"""The one Definitions object: assets, checks, jobs, sensors, schedules, resources and executor."""

from __future__ import annotations

from dagster import Definitions, Field, LoggerDefinition, load_assets_from_modules

from soniquebay_assets.dagster_defs.assets import catalog, covers, enrich, extract, scan
from soniquebay_assets.dagster_defs.assets import deferred as deferred_assets
from soniquebay_assets.dagster_defs.assets import online as online_assets
from soniquebay_assets.dagster_defs.assets import playlists as playlist_assets
from soniquebay_assets.dagster_defs.assets import vectors as vector_assets
from soniquebay_assets.dagster_defs.executor import build_executor
from soniquebay_assets.dagster_defs.internals import colored_console_logger
from soniquebay_assets.dagster_defs.jobs import scan_job
from soniquebay_assets.dagster_defs.resources import default_resources
from soniquebay_assets.dagster_defs.schedules import all_schedule_definitions
from soniquebay_assets.dagster_defs.sensors import library_changes_sensor

# Each stage adds its asset module here.
ASSET_MODULES = [scan, extract, catalog, covers, enrich]

ASSET_MODULES += [deferred_assets]  # deferred-queue upkeep
ASSET_MODULES += [vector_assets]  # track embeddings + validate_vectors check
ASSET_MODULES += [online_assets]  # MusicBrainz / Last.fm / AcoustID metadata
ASSET_MODULES += [playlist_assets]  # saved playlists: M3U8 files and Subsonic copies

JOBS = [scan_job, playlist_assets.playlists_job]
SENSORS = [library_changes_sensor, playlist_assets.playlists_sensor]
SCHEDULES: list = []



def all_assets() -> list:
    """Every asset definition, for the CLI's in-process materialize."""
    return list(load_assets_from_modules(ASSET_MODULES))


# Deferred refresh per kind (only kinds whose assets exist), failed-work retry, daily maintenance.
_DEFERRED_JOBS, _DEFERRED_SCHEDULES, _DEFERRED_SENSORS = all_schedule_definitions(
    k.to_user_string() for a in all_assets() for k in a.keys
)

# Every run and Celery worker prints the events of its steps to its console at this level: WARNING keeps worker
# logs to the concise step lines (the UI's event log still holds every event). Run config may lower it.
quiet_console_logger = LoggerDefinition(
    colored_console_logger.logger_fn,
    config_schema={"log_level": Field(str, is_required=False, default_value="WARNING"),
                   "name": Field(str, is_required=False, default_value="dagster")},
    description="The colored console logger, at WARNING unless the run config says otherwise.",
)

defs = Definitions(
    assets=all_assets(),
    jobs=JOBS + _DEFERRED_JOBS,
    sensors=SENSORS + _DEFERRED_SENSORS,
    schedules=SCHEDULES + _DEFERRED_SCHEDULES,
    resources=default_resources(),
    loggers={"console": quiet_console_logger},
    executor=build_executor(),  # in-process unless SONIQUEBAY_EXECUTOR=celery or run config selects it
)
