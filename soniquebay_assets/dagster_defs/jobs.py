"""Asset jobs: the scan chain, and the whole chain."""

from dagster import AssetSelection, define_asset_job

from soniquebay_assets.queues import SCAN_CHAIN_GROUPS

# Run config for the runs the deployment starts by itself (sensor, schedules): its processes and Celery workers
# print only warnings of the run's events to their console; the event log in the UI still holds everything.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

scan_job = define_asset_job(
    "scan_job",
    selection=AssetSelection.groups(*SCAN_CHAIN_GROUPS),
    description="Inventory, tags and catalog entities for the requested shards.",
)
