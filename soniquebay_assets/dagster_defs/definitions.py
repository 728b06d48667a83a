"""The one Definitions object: assets, checks, jobs, sensors, schedules, resources and executor."""

from __future__ import annotations

from dagster import Definitions, Field, LoggerDefinition

from soniquebay_assets.dagster_defs.assets import all_assets, stage_jobs_and_sensors
from soniquebay_assets.dagster_defs.executor import build_executor
from soniquebay_assets.dagster_defs.internals import colored_console_logger
from soniquebay_assets.dagster_defs.jobs import scan_job
from soniquebay_assets.dagster_defs.resources import default_resources
from soniquebay_assets.dagster_defs.schedules import all_schedule_definitions
from soniquebay_assets.dagster_defs.sensors import library_changes_sensor

# Every stage's assets (the stage registry names the modules), checks with them; the jobs and sensors of stages
# that start their own runs.
ASSETS = all_assets()
_STAGE_JOBS, _STAGE_SENSORS = stage_jobs_and_sensors()
JOBS = [scan_job, *_STAGE_JOBS]
SENSORS = [library_changes_sensor, *_STAGE_SENSORS]
SCHEDULES: list = []

# Deferred refresh per kind (only kinds whose assets exist), failed-work retry, daily maintenance.
_DEFERRED_JOBS, _DEFERRED_SCHEDULES, _DEFERRED_SENSORS = all_schedule_definitions(
    group for a in ASSETS for group in a.group_names_by_key.values()
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
    assets=ASSETS,
    jobs=JOBS + _DEFERRED_JOBS,
    sensors=SENSORS + _DEFERRED_SENSORS,
    schedules=SCHEDULES + _DEFERRED_SCHEDULES,
    resources=default_resources(),
    loggers={"console": quiet_console_logger},
    executor=build_executor(),  # in-process unless SONIQUEBAY_EXECUTOR=celery or run config selects it
)
