"""The one home of the private Dagster and dagster-celery APIs this project relies on.

Each name below is outside the libraries' public API and may move or change in any release.
soniquebay_assets_tests/test_dagster_internals.py pins every one of them (module, signature, behaviour the
project depends on) against VERIFIED_VERSIONS, so an upgrade fails that test loudly instead of breaking runs
silently. dagster-celery pieces are returned by functions: importing Celery costs ~0.15 s that in-process runs
never need.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Sequence
from typing import Any

from dagster import BetaWarning, PreviewWarning
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    _core_in_process_executor_creation,
    multiple_process_executor_requirements,
)
from dagster._core.definitions.reconstruct import build_reconstructable_job
from dagster._core.events import (
    DagsterEvent,
    DagsterEventBatchMetadata,
    DagsterEventType,
    EngineEventData,
    StepMaterializationData,
)
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import create_db_conn_string
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._loggers import colored_console_logger
from dagster._record import copy as copy_record

VERIFIED_VERSIONS = {"dagster": "1.13.27", "dagster-celery": "0.29.27"}

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG", "ASSET_PARTITION_RANGE_START_TAG", "IN_PROC_CONFIG", "CheckRunHealthResult",
    "DagsterEvent", "DagsterRun", "DefaultRunLauncher", "EngineEventData", "LaunchRunContext", "RetryMode",
    "SqlEventLogStorageTable", "SqliteEventLogStorage", "WorkerStatus", "_core_in_process_executor_creation", "build_reconstructable_job",
    "colored_console_logger", "copy_record", "create_db_conn_string", "get_retries_config",
    "multiple_process_executor_requirements", "report_runless_materializations",
]  # fmt: skip


def read_alembic_scripts_once() -> None:
    """Dagster builds a new alembic ScriptDirectory, re-reading its ~90 migration scripts, for every SQLite
    storage it opens or checks (runs, schedules, event index, each run's event shard: 4-6 per command, 50-150 ms
    each). The scripts do not change while a process runs: keep one ScriptDirectory per location."""
    from alembic.script import ScriptDirectory

    if getattr(ScriptDirectory, "_soniquebay_shared", False):
        return
    build = ScriptDirectory.from_config.__func__
    shared: dict[tuple, Any] = {}

    def from_config(cls, config):
        key = (cls, config.get_main_option("script_location"), config.get_main_option("version_locations"))
        if key not in shared:
            shared[key] = build(cls, config)
        return shared[key]

    ScriptDirectory.from_config = classmethod(from_config)
    ScriptDirectory._soniquebay_shared = True


# Every module of the Dagster layer that defines assets, opens an instance or builds the executor imports this one
# first, so these hold wherever Dagster is used and cost nothing where it is not (a scan recorded without a run).
# backfill_policy and a few other parameters relied on are flagged beta: the noise helps nobody.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
read_alembic_scripts_once()


def report_runless_materializations(instance: Any, materializations: Sequence[Any]) -> None:
    """The events `instance.report_runless_asset_event` records, one asset's at a time in one event batch (one
    transaction per database with the pooled event log) instead of one write per event (~5 ms each)."""
    by_asset: dict[Any, list[Any]] = {}
    for materialization in materializations:
        by_asset.setdefault(materialization.asset_key, []).append(materialization)
    for batch in by_asset.values():
        batch_id = uuid.uuid4().hex
        for index, materialization in enumerate(batch):
            event = DagsterEvent(event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                                 event_specific_data=StepMaterializationData(materialization),
                                 job_name=RUNLESS_JOB_NAME)
            instance.report_dagster_event(event, run_id=RUNLESS_RUN_ID,
                                          batch_metadata=DagsterEventBatchMetadata(batch_id, index == len(batch) - 1))


def celery_executor_class() -> type:
    """dagster-celery's CeleryExecutor (subclassed to check queue consumers)."""
    from dagster_celery.executor import CeleryExecutor

    return CeleryExecutor


def celery_submit_task() -> Any:
    """dagster-celery's private `_submit_task(app, plan_context, step, queue, priority, known_state)`."""
    from dagster_celery.executor import _submit_task

    return _submit_task


def celery_execution_loop() -> Any:
    """dagster-celery's `core_celery_execution_loop(job_context, execution_plan, step_execution_fn)`."""
    from dagster_celery.core_execution_loop import core_celery_execution_loop

    return core_celery_execution_loop


def celery_make_app() -> Any:
    """dagster-celery's `make_app(app_args)`: the Celery app its step task is registered on."""
    from dagster_celery.make_app import make_app

    return make_app


def celery_create_task() -> Any:
    """dagster-celery's `create_task(app)`: registers the `execute_plan` task every step is sent as."""
    from dagster_celery.tasks import create_task

    return create_task


def celery_default_config() -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """(DEFAULT_CONFIG, dict_wrapper, broker_transport_options): dagster-celery's Celery settings and wrapper."""
    from dagster_celery.config import DEFAULT_CONFIG, dict_wrapper
    from dagster_celery.defaults import broker_transport_options

    return DEFAULT_CONFIG, dict_wrapper, broker_transport_options
