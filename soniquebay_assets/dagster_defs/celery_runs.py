"""Running asset groups through the Celery executor from Python (CLI scan, benchmark, tests).

`materialize()` always runs in-process; a Celery run needs a job that workers can rebuild from a module, so
`group_job` is the reconstructor workers call with the same arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster import AssetSelection, DagsterInstance, Definitions, define_asset_job, execute_job

from soniquebay_assets.dagster_defs.internals import build_reconstructable_job


def group_job_name(groups: Sequence[str]) -> str:
    return "celery_" + "_".join(groups)


def group_job(groups: Sequence[str], resources: dict[str, Any] | None = None):
    """An asset job over `groups` with the Celery executor (called again inside every worker)."""
    from soniquebay_assets.dagster_defs.definitions import all_assets
    from soniquebay_assets.dagster_defs.executor import build_executor
    from soniquebay_assets.dagster_defs.partitions import SHARDS
    from soniquebay_assets.dagster_defs.resources import default_resources

    name = group_job_name(groups)
    job = define_asset_job(name, selection=AssetSelection.groups(*groups), partitions_def=SHARDS,
                           executor_def=build_executor("celery"))
    return Definitions(assets=all_assets(), jobs=[job],
                       resources=resources or default_resources()).resolve_job_def(name)


def reconstructable_group_job(groups: Sequence[str]):
    return build_reconstructable_job(__name__, "group_job", reconstructable_args=(tuple(groups),))


def celery_run_config(roots: Sequence[Path], data_root: Path, snapshot: Path | None, groups: Sequence[str],
                      *, executor_config: dict | None = None) -> dict[str, Any]:
    """Resource config travels in the run config so every worker reads the same library and catalog: the URL of
    a server catalog (each worker keeps its own data dir), else the data dir holding the catalog file."""
    from soniquebay_assets.settings import DataDir

    data = DataDir(Path(data_root))
    catalog_config = {"data_dir_path": str(data_root)} if data.catalog_is_local_file \
        else {"catalog_url": data.catalog_url}
    run_config: dict[str, Any] = {
        "resources": {
            "catalog": {"config": catalog_config},
            "library": {"config": {"roots": [str(r) for r in roots]}},
        },
        "execution": {"config": {"celery": dict(executor_config or {})}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    if snapshot is not None and "scan" in groups:
        run_config["ops"] = {"file_inventory": {"config": {"snapshot": str(snapshot)}}}
    return run_config


def materialize_through_celery(groups: Sequence[str], shards: Sequence[str], roots: Sequence[Path],
                               data_root: Path, snapshot: Path | None, *, instance: DagsterInstance | None = None,
                               executor_config: dict | None = None, tags: dict | None = None,
                               job: Any = None, extra_resource_config: dict | None = None) -> dict[str, Any]:
    """Same result shape as the CLI's in-process materialize: run id, success, metadata per asset."""
    from soniquebay_assets.dagster_defs.partitions import range_tags

    instance = instance or DagsterInstance.get()
    run_tags = {**range_tags(list(shards)), "soniquebay/origin": "cli", "soniquebay/executor": "celery",
                **(tags or {})}
    run_config = celery_run_config(roots, data_root, snapshot, groups, executor_config=executor_config)
    for resource, config in (extra_resource_config or {}).items():
        run_config["resources"][resource]["config"].update(config)
    with execute_job(job or reconstructable_group_job(groups), instance=instance, run_config=run_config,
                     tags=run_tags, raise_on_error=False) as result:
        metadata: dict[str, dict[str, Any]] = {}
        for event in result.get_asset_materialization_events():
            mat = event.event_specific_data.materialization
            metadata[mat.asset_key.to_user_string()] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
        failure = None if result.success else result.get_run_failure_event().message
        return {"run_id": result.run_id, "success": result.success, "metadata": metadata, "failure": failure}
