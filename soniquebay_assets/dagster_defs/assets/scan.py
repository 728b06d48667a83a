"""Group `scan`: the file inventory of the library (one walk per run, shared by all shards of the run)."""

import time

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue

from soniquebay_assets.dagster_defs.metadata import log_prefix, md_table, report_shard_range, shard_summary
from soniquebay_assets.dagster_defs.partitions import shard_asset
from soniquebay_assets.dagster_defs.resources import CatalogResource, LibraryResource
from soniquebay_assets.library.walker import walk_library
from soniquebay_assets.pipeline.scan import InventoryStats, inventory_shards, load_snapshot
from soniquebay_assets.queues import WORKER_SCAN


class InventoryConfig(Config):
    snapshot: str = ""  # a walk saved by the CLI or the sensor; empty: walk now


@shard_asset(
    "scan",
    description="Audio files under the library roots with size and mtime; new, changed, moved and deleted files.",
)
def file_inventory(
    context: AssetExecutionContext, config: InventoryConfig, catalog: CatalogResource, library: LibraryResource
) -> MaterializeResult:
    def work(shards: list[str]) -> tuple[MaterializeResult, str]:
        started = time.perf_counter()
        with catalog.connection() as conn:
            walk = load_snapshot(config.snapshot, conn) if config.snapshot else walk_library(library.root_paths())
            stats = inventory_shards(conn, walk, shards)
        stats.seconds = round(time.perf_counter() - started, 3)  # a run's step also loads or makes the walk
        return inventory_result(shards, stats)

    return report_shard_range(context, catalog, work)


def inventory_result(shards: list[str], stats: InventoryStats) -> tuple[MaterializeResult, str]:
    """The asset's materialization and log line for its stage's stats (shared with scans recorded without a run)."""
    line = (
        f"{log_prefix(WORKER_SCAN)} shards {shard_summary(shards)}: {stats.files_seen} files, {stats.new} new, "
        f"{stats.changed} changed, {stats.resumed} resumed, {stats.moved} moved, {stats.deleted} deleted, {stats.walk_problems} walk problems"
    )
    return MaterializeResult(
        metadata={
            "shards": shard_summary(shards),
            "files_seen": stats.files_seen,
            "new": stats.new,
            "changed": stats.changed,
            "unchanged": stats.unchanged,
            "resumed": stats.resumed,
            "moved": stats.moved,
            "deleted": stats.deleted,
            "walk_problems": stats.walk_problems,
            "problems_by_reason": md_table(stats.problems_by_reason),
            "deleted_paths": MetadataValue.json(stats.deleted_paths[:50]),
            "moved_paths": MetadataValue.json([list(p) for p in stats.moved_paths[:50]]),
            "unavailable_roots": MetadataValue.json(stats.unavailable_roots),
            "seconds": stats.seconds,
        }
    ), line
