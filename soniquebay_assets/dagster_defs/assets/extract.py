"""Group `extract`: raw tags of every new or changed file (mutagen, in a process pool)."""


from dagster import AssetExecutionContext, MaterializeResult

from soniquebay_assets.dagster_defs.metadata import log_prefix, md_table, report_shard_range, shard_summary
from soniquebay_assets.dagster_defs.partitions import shard_asset
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.pipeline.scan import ExtractStats, extract_shards
from soniquebay_assets.queues import WORKER_EXTRACT


@shard_asset(
    "extract",
    deps=["file_inventory"],
    description="Tags, audio stream facts and a quality score for each new or changed file; bad files recorded.",
)
def raw_metadata(context: AssetExecutionContext, catalog: CatalogResource) -> MaterializeResult:
    def work(shards: list[str]) -> tuple[MaterializeResult, str]:
        with catalog.connection() as conn:
            return tags_result(shards, extract_shards(conn, shards))

    return report_shard_range(context, catalog, work)


def tags_result(shards: list[str], stats: ExtractStats) -> tuple[MaterializeResult, str]:
    """The asset's materialization and log line for its stage's stats (shared with scans recorded without a run)."""
    line = (
        f"{log_prefix(WORKER_EXTRACT)} shards {shard_summary(shards)}: read {stats.read}, ok {stats.ok}, "
        f"errors {stats.errors} in {stats.seconds}s"
    )
    return MaterializeResult(
        metadata={
            "shards": shard_summary(shards),
            "files_read": stats.read,
            "ok": stats.ok,
            "errored": stats.errors,
            "errors_by_reason": md_table(stats.errors_by_reason),
            "formats": md_table(stats.formats, key="format", value="files"),
            "mean_quality_score": stats.mean_quality if stats.mean_quality is not None else 0.0,
            "files_per_second": round(stats.read / stats.seconds, 1) if stats.seconds else 0.0,
            "seconds": stats.seconds,
        }
    ), line
