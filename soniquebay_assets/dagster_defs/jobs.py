"""Asset jobs: the scan chain, and the whole chain."""

from dagster import AssetSelection, define_asset_job

from soniquebay_assets.queues import SCAN_CHAIN_GROUPS

scan_job = define_asset_job(
    "scan_job",
    selection=AssetSelection.groups(*SCAN_CHAIN_GROUPS),
    description="Inventory, tags and catalog entities for the requested shards.",
)
