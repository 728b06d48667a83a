"""Contract of every private Dagster / dagster-celery API in dagster_defs/internals.py, at the pinned versions.

When a Dagster upgrade breaks one of these, re-check how the project uses that name (grep for it), adapt
internals.py and its users, then move VERIFIED_VERSIONS.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest
from dagster import MaterializeResult

from soniquebay_assets.dagster_defs import internals


def _params(function) -> list[str]:
    return [p for p in inspect.signature(function).parameters if p != "self"]


@pytest.mark.parametrize("package", sorted(internals.VERIFIED_VERSIONS))
def test_installed_versions_are_the_verified_ones(package):
    assert version(package) == internals.VERIFIED_VERSIONS[package], (
        f"{package} {version(package)} is not the version internals.py was verified against: re-check every "
        f"private API it exposes, then update VERIFIED_VERSIONS"
    )


def test_executor_building_blocks():
    assert _params(internals._core_in_process_executor_creation) == ["config"]
    assert all(type(r).__name__ == "ExecutorRequirement" for r in internals.multiple_process_executor_requirements())
    assert type(internals.IN_PROC_CONFIG).__name__ == "Field"
    assert type(internals.get_retries_config()).__name__ == "Field"
    assert internals.RetryMode.from_config({"enabled": {}}) == internals.RetryMode.ENABLED
    assert _params(internals.DagsterEvent.engine_event)[:3] == ["plan_context", "message", "event_specific_data"]
    assert internals.EngineEventData(metadata={"pid": 1}).metadata["pid"].value == 1


def test_reconstructable_job_factory():
    assert _params(internals.build_reconstructable_job)[:3] == [
        "reconstructor_module_name", "reconstructor_function_name", "reconstructable_args"]


def test_event_log_storage_hooks_the_pooled_log_overrides():
    storage = internals.SqliteEventLogStorage
    assert _params(storage._connect) == ["shard"] and _params(storage._initdb)[:1] == ["engine"]
    assert hasattr(storage, "supports_partition_subset_in_asset_materialization_planned_events")
    assert _params(storage.has_table) == ["table_name"]
    assert _params(storage._has_asset_key_col_on_connection) == ["conn", "column_name"]
    assert _params(storage.store_event_batch) == ["events"] and _params(storage._event_to_row) == ["event"]
    assert _params(storage._store_asset_event_tags) == ["conn", "events", "event_ids"]
    assert _params(storage._store_asset_event) == ["conn", "event", "event_id"]
    assert _params(storage.run_connection) == ["run_id"] and _params(storage.index_transaction) == []
    assert {"run_id", "event", "dagster_event_type", "asset_key", "partition"} <= set(
        internals.SqlEventLogStorageTable.c.keys())
    assert _params(internals.create_db_conn_string) == ["base_dir", "db_name"]
    assert internals.create_db_conn_string("/tmp/x", "index").startswith("sqlite:///")


def test_run_launcher_health_check_types():
    assert _params(internals.DefaultRunLauncher.launch_run) == ["context"]
    assert _params(internals.DefaultRunLauncher.check_run_worker_health) == ["run"]
    assert {"RUNNING", "FAILED"} <= set(internals.WorkerStatus.__members__)
    result = internals.CheckRunHealthResult(internals.WorkerStatus.FAILED, "gone")
    assert (result.status, result.msg) == (internals.WorkerStatus.FAILED, "gone")
    assert "dagster_run" in inspect.signature(internals.LaunchRunContext).parameters
    assert "tags" in internals.DagsterRun.__annotations__ or hasattr(internals.DagsterRun, "tags")


def test_partition_range_tags_and_record_copy():
    assert internals.ASSET_PARTITION_RANGE_START_TAG == "dagster/asset_partition_range_start"
    assert internals.ASSET_PARTITION_RANGE_END_TAG == "dagster/asset_partition_range_end"
    copied = internals.copy_record(MaterializeResult(metadata={"a": 1}), metadata={"a": 1, "host": "h"})
    assert isinstance(copied, MaterializeResult) and set(copied.metadata) == {"a", "host"}
    assert callable(internals.colored_console_logger.logger_fn)


def test_dagster_celery_pieces():
    assert _params(internals.celery_submit_task()) == ["app", "plan_context", "step", "queue", "priority",
                                                       "known_state"]
    assert _params(internals.celery_execution_loop()) == ["job_context", "execution_plan", "step_execution_fn"]
    assert _params(internals.celery_make_app()) == ["app_args"]
    assert _params(internals.celery_create_task())[:1] == ["celery_app"]
    executor = internals.celery_executor_class()
    assert {"retries", "broker", "backend", "include", "config_source"} <= set(_params(executor.__init__))
    assert callable(executor.execute) and callable(executor.app_args)
    default_config, dict_wrapper, transport = internals.celery_default_config()
    assert isinstance(default_config, dict) and isinstance(transport, dict)
    assert dict_wrapper({"a": 1}).a == 1


def test_alembic_scripts_are_read_once_per_location():
    from alembic.script import ScriptDirectory
    from dagster._core.storage.event_log.sqlite import sqlite_event_log
    from dagster._core.storage.runs.sqlite import sqlite_run_storage
    from dagster._core.storage.sql import get_alembic_config

    internals.read_alembic_scripts_once()
    internals.read_alembic_scripts_once()  # idempotent
    first = ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))
    assert ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__)) is first
    assert ScriptDirectory.from_config(get_alembic_config(sqlite_run_storage.__file__)).as_revision_number("head")
    assert _params(internals.SqliteEventLogStorage._initdb)[:1] == ["engine"]


def test_runless_materializations_are_recorded_in_one_batch_like_dagsters_own(tmp_path, monkeypatch):
    from dagster import AssetKey, AssetMaterialization, AssetRecordsFilter, DagsterInstance

    from soniquebay_assets.cli.common import use_dagster_home
    from soniquebay_assets.settings import DataDir

    assert _params(internals.DagsterEventBatchMetadata) == ["id", "is_end"]
    assert internals.RUNLESS_RUN_ID == "" and internals.RUNLESS_JOB_NAME == ""
    use_dagster_home(DataDir(tmp_path / "data").ensure())  # the CLI's instance: the pooled event log
    instance = DagsterInstance.get()
    storage = type(instance.event_log_storage)
    batches = []
    original = storage.store_event_batch
    monkeypatch.setattr(storage, "store_event_batch",
                        lambda self, events: (batches.append(len(events)), original(self, events)))
    made = [AssetMaterialization(asset_key=name, partition=shard, metadata={"n": i})
            for name in ("a", "b") for i, shard in enumerate(("00", "01", "02"))]
    internals.report_runless_materializations(instance, made)
    instance.report_runless_asset_event(AssetMaterialization(asset_key="c", partition="00"))  # Dagster's own path
    assert batches == [3, 3]  # one write per asset
    for name in ("a", "b", "c"):
        records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(name)), limit=10).records
        assert {r.run_id for r in records} == {""}
        assert instance.get_materialized_partitions(AssetKey(name)) == ({"00"} if name == "c" else {"00", "01", "02"})
    latest = instance.get_latest_materialization_event(AssetKey("b"))
    assert latest.asset_materialization.partition == "02" and latest.asset_materialization.metadata["n"].value == 2
