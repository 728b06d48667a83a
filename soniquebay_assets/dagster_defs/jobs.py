"""Asset jobs: the scan chain, and the whole chain."""

from dagster import AssetSelection, define_asset_job

from soniquebay_assets.dagster_defs.partitions import SHARDS

SCAN_GROUPS = ("scan", "extract", "insert")

scan_job = define_asset_job(
    "scan_job",
    selection=AssetSelection.groups(*SCAN_GROUPS),
    partitions_def=SHARDS,
    description="Inventory, tags and catalog entities for the requested shards.",
)
