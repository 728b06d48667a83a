"""Group `insert`: artists, albums, tracks, credits and genres, with data-quality checks."""


from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
)

from soniquebay_assets.dagster_defs.metadata import log_prefix, md_table, report_shard_range, shard_summary
from soniquebay_assets.dagster_defs.partitions import shard_asset
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.pipeline.scan import CatalogStats, run_catalog_chain
from soniquebay_assets.queues import WORKER_INSERT_BULK

MAX_FALLBACK_TITLE_SHARE = 0.25

CHECKS = [
    AssetCheckSpec("no_duplicate_paths", asset="catalog_entities", description="Each file is one track."),
    AssetCheckSpec("tracks_have_album_and_artist", asset="catalog_entities",
                   description="Every track belongs to an album and has a main artist."),
    AssetCheckSpec("fallback_title_share", asset="catalog_entities",
                   description=f"Under {MAX_FALLBACK_TITLE_SHARE:.0%} of titles come from file names."),
]


@shard_asset(
    "insert",
    deps=["raw_metadata"],
    check_specs=CHECKS,
    description="Catalog entities: artists, albums (compilations kept whole), tracks, credits and genres.",
)
def catalog_entities(context: AssetExecutionContext, catalog: CatalogResource) -> MaterializeResult:
    def work(shards: list[str]) -> tuple[MaterializeResult, str]:
        with catalog.connection() as conn:
            return entities_result(shards, run_catalog_chain(conn, ["insert"], shards, None)["insert"])

    return report_shard_range(context, catalog, work)


def entities_result(shards: list[str], stats: CatalogStats) -> tuple[MaterializeResult, str]:
    """The asset's materialization, check results and log line for its stage's stats (shared with scans recorded
    without a run)."""
    facts = stats.facts
    counts = facts.counts
    line = (
        f"{log_prefix(WORKER_INSERT_BULK)} shards {shard_summary(shards)}: wrote {stats.written} tracks, "
        f"{stats.errors} errors; catalog now {counts['tracks']} tracks, {counts['albums']} albums"
    )
    return MaterializeResult(
        metadata={
            "shards": shard_summary(shards),
            "tracks_written": stats.written,
            "errored": stats.errors,
            "catalog_tracks": counts["tracks"],
            "catalog_albums": counts["albums"],
            "catalog_artists": counts["artists"],
            "catalog_genres": counts["genres"],
            "catalog_errors": counts["errors"],
            "orphans_removed": MetadataValue.json(stats.orphans_removed),
            "formats_in_shards": md_table(facts.formats_in_shards, key="format", value="tracks"),
            "errors_by_reason_in_shards": md_table(facts.errors_by_reason_in_shards),
            "duration_hours_in_shards": round(facts.duration_hours_in_shards, 2),
            "seconds": stats.seconds,
        },
        check_results=[
            AssetCheckResult(check_name="no_duplicate_paths", passed=not facts.duplicate_paths,
                             metadata={"duplicates": MetadataValue.json(facts.duplicate_paths[:20])}),
            AssetCheckResult(check_name="tracks_have_album_and_artist",
                             passed=not facts.tracks_missing_album_or_artist,
                             metadata={"tracks_missing": len(facts.tracks_missing_album_or_artist)}),
            AssetCheckResult(check_name="fallback_title_share",
                             passed=facts.fallback_title_share <= MAX_FALLBACK_TITLE_SHARE,
                             severity=AssetCheckSeverity.WARN, metadata={"share": round(facts.fallback_title_share, 4)}),
        ],
    ), line

