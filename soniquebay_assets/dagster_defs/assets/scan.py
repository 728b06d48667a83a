"""Group `scan`: the file inventory of the library (one walk per run, shared by all shards of the run)."""


import time

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue

from soniquebay_assets.dagster_defs.metadata import log_prefix, md_table, report_shard_range, shard_summary
from soniquebay_assets.dagster_defs.partitions import shard_asset
from soniquebay_assets.dagster_defs.resources import CatalogResource, LibraryResource
from soniquebay_assets.library.walker import walk_library
from soniquebay_assets.pipeline.scan import inventory_shards, load_snapshot
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
    return report_shard_range(context, catalog,
                              lambda shards: take_inventory(shards, catalog, library, config.snapshot))


def take_inventory(shards: list[str], catalog: CatalogResource, library: LibraryResource,
                   snapshot: str) -> tuple[MaterializeResult, str]:
    """The asset's work and its log line (shared with scans recorded without a run)."""
    started = time.perf_counter()
    with catalog.connection() as conn:
        walk = load_snapshot(snapshot, conn) if snapshot else walk_library(library.root_paths())
        stats = inventory_shards(conn, walk, shards)
    line = (
        f"{log_prefix(WORKER_SCAN)} shards {shard_summary(shards)}: {stats.files_seen} files, {stats.new} new, "
        f"{stats.changed} changed, {stats.moved} moved, {stats.deleted} deleted, {stats.walk_problems} walk problems"
    )
    return MaterializeResult(
        metadata={
            "shards": shard_summary(shards),
            "files_seen": stats.files_seen,
            "new": stats.new,
            "changed": stats.changed,
            "unchanged": stats.unchanged,
            "moved": stats.moved,
            "deleted": stats.deleted,
            "walk_problems": stats.walk_problems,
            "problems_by_reason": md_table(stats.problems_by_reason),
            "deleted_paths": MetadataValue.json(stats.deleted_paths[:50]),
            "moved_paths": MetadataValue.json([list(p) for p in stats.moved_paths[:50]]),
            "unavailable_roots": MetadataValue.json(walk.unavailable_roots),
            "seconds": round(time.perf_counter() - started, 3),
        }
    ), line
