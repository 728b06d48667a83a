"""A few changed shards of the catalog chain, done without a Dagster run and recorded as runless materializations.

On a handful of shards the chain's work takes tens of milliseconds while a run costs about a second (job
construction, run record, planned and step events). Here the same asset bodies run in-process, then each shard
and asset gets one runless materialization carrying the same metadata a run would record (plus `recorded_by`),
and the catalog checks their evaluations, so the UI shows what the scan did. Only shards that changed are
recorded, never a whole range.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from soniquebay_assets.queues import SCAN_CHAIN_GROUPS

# Above this many changed shards a run's fixed cost is small beside the work, and the run's logs are worth it.
MAX_RUNLESS_SHARDS = 8
RECORDED_BY = "soniquebay scan, no run (few shards changed)"


def runless_applies(groups: Sequence[str], shard_count: int) -> bool:
    """Only the catalog chain (sub-second on a few shards); later stages load models and deserve a run's logs."""
    return 0 < shard_count <= MAX_RUNLESS_SHARDS and set(groups) <= set(SCAN_CHAIN_GROUPS)


def materialize_without_run(groups: Sequence[str], shards: Sequence[str], roots: Sequence[Path], data_root: Path,
                            snapshot: int | str | None) -> dict[str, Any]:
    """Run the selected catalog-chain stages on `shards` and record them; same result shape as a run's."""
    from dagster import AssetCheckEvaluation, AssetKey, AssetMaterialization, DagsterInstance

    from soniquebay_assets.dagster_defs.assets.catalog import write_entities
    from soniquebay_assets.dagster_defs.assets.extract import read_tags
    from soniquebay_assets.dagster_defs.assets.scan import take_inventory
    from soniquebay_assets.dagster_defs.metadata import shard_metadata
    from soniquebay_assets.dagster_defs.resources import CatalogResource, LibraryResource
    from soniquebay_assets.settings import host_label

    catalog = CatalogResource(data_dir_path=str(data_root))
    library = LibraryResource(roots=[str(r) for r in roots])
    shards = sorted(shards)
    stages = {
        "scan": ("file_inventory", lambda: take_inventory(shards, catalog, library, str(snapshot or ""))),
        "extract": ("raw_metadata", lambda: read_tags(shards, catalog)),
        "insert": ("catalog_entities", lambda: write_entities(shards, catalog)),
    }
    results = {}
    for group in SCAN_CHAIN_GROUPS:  # the chain's order
        if group in groups:
            asset_name, work = stages[group]
            results[asset_name] = work()[0]
    per_shard = shard_metadata(catalog, shards)
    instance = DagsterInstance.get()
    host = host_label()
    metadata: dict[str, dict[str, Any]] = {}
    for asset_name, result in results.items():
        run_wide = {**(result.metadata or {}), "host": host, "recorded_by": RECORDED_BY}
        for shard in shards:
            instance.report_runless_asset_event(AssetMaterialization(
                asset_key=asset_name, partition=shard, metadata={**run_wide, **per_shard[shard]}))
        for check in result.check_results or []:
            instance.report_runless_asset_event(AssetCheckEvaluation(
                asset_key=AssetKey(asset_name), check_name=check.check_name, passed=check.passed,
                metadata=check.metadata or {}, severity=check.severity))
        metadata[asset_name] = {k: getattr(v, "value", v) for k, v in run_wide.items()}
    return {"run_id": None, "success": True, "metadata": metadata}
