"""Catalog-chain work done outside a Dagster run, recorded as runless materializations.

A CLI scan of the catalog stages runs the same stage functions as the assets, in-process, while Dagster's imports
and instance load in a child process beside them (they cost about 1.2 s of CPU, the work on a few thousand files not much
more). Each changed shard and asset then gets one runless materialization carrying the metadata a run would record
(plus `recorded_by`), and the catalog checks their evaluations, so the UI shows what the scan did. Only shards
that changed are recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

RECORDED_BY = "soniquebay scan, no run (catalog stages from the command line)"
# chain group -> its asset, in the chain's order
ASSET_OF_GROUP = {"scan": "file_inventory", "extract": "raw_metadata", "insert": "catalog_entities"}


def open_recorder() -> Any:
    """Import what recording needs and open the Dagster instance (in the scan's recorder process, while the work runs)."""
    from dagster import DagsterInstance

    import soniquebay_assets.dagster_defs.assets.catalog
    import soniquebay_assets.dagster_defs.assets.extract
    import soniquebay_assets.dagster_defs.assets.scan  # noqa: F401

    return DagsterInstance.get()


def record_without_run(instance: Any, stats_by_group: dict[str, Any], shards: Sequence[str],
                       data_root: Path) -> dict[str, Any]:
    """Record each stage's stats per shard as runless materializations and check evaluations; a run's result shape."""
    from dagster import AssetCheckEvaluation, AssetKey, AssetMaterialization

    from soniquebay_assets.dagster_defs.assets.catalog import entities_result
    from soniquebay_assets.dagster_defs.assets.extract import tags_result
    from soniquebay_assets.dagster_defs.assets.scan import inventory_result
    from soniquebay_assets.dagster_defs.internals import report_runless_materializations
    from soniquebay_assets.dagster_defs.metadata import shard_metadata
    from soniquebay_assets.dagster_defs.resources import CatalogResource
    from soniquebay_assets.settings import host_label

    builders = {"scan": inventory_result, "extract": tags_result, "insert": entities_result}
    shards = sorted(shards)
    per_shard = shard_metadata(CatalogResource(data_dir_path=str(data_root)), shards)
    host = host_label()
    metadata: dict[str, dict[str, Any]] = {}
    for group, asset_name in ASSET_OF_GROUP.items():
        if group not in stats_by_group:
            continue
        result, _line = builders[group](shards, stats_by_group[group])
        run_wide = {**(result.metadata or {}), "host": host, "recorded_by": RECORDED_BY}
        report_runless_materializations(instance, [
            AssetMaterialization(asset_key=asset_name, partition=shard, metadata={**run_wide, **per_shard[shard]})
            for shard in shards])
        for check in result.check_results or []:
            instance.report_runless_asset_event(AssetCheckEvaluation(
                asset_key=AssetKey(asset_name), check_name=check.check_name, passed=check.passed,
                metadata=check.metadata or {}, severity=check.severity))
        metadata[asset_name] = {k: getattr(v, "value", v) for k, v in run_wide.items()}
    return {"run_id": None, "success": True, "metadata": metadata}
