"""Group `insert`: artists, albums, tracks, credits and genres, with data-quality checks."""


from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
)

from soniquebay_assets.catalog import queries
from soniquebay_assets.dagster_defs.metadata import log_prefix, md_table, report_shard_range, shard_summary
from soniquebay_assets.dagster_defs.partitions import shard_asset
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.pipeline.scan import catalog_shards
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
    return report_shard_range(context, catalog, lambda shards: write_entities(shards, catalog))


def write_entities(shards: list[str], catalog: CatalogResource) -> tuple[MaterializeResult, str]:
    """The asset's work and its log line (shared with scans recorded without a run)."""
    with catalog.connection() as conn:
        stats = catalog_shards(conn, shards)
        counts = queries.catalog_counts(conn)
        formats = queries.formats_breakdown(conn, shards)
        duration_h = queries.total_duration_s(conn, shards) / 3600
        duplicates = queries.duplicate_paths(conn)
        orphans = queries.tracks_missing_album_or_artist(conn)
        fallback_share = queries.fallback_title_share(conn)
        errors = queries.errors_by_reason(conn, shards=shards)
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
            "formats_in_shards": md_table(formats, key="format", value="tracks"),
            "errors_by_reason_in_shards": md_table(errors),
            "duration_hours_in_shards": round(duration_h, 2),
            "seconds": stats.seconds,
        },
        check_results=[
            AssetCheckResult(check_name="no_duplicate_paths", passed=not duplicates,
                             metadata={"duplicates": MetadataValue.json(duplicates[:20])}),
            AssetCheckResult(check_name="tracks_have_album_and_artist", passed=not orphans,
                             metadata={"tracks_missing": len(orphans)}),
            AssetCheckResult(check_name="fallback_title_share", passed=fallback_share <= MAX_FALLBACK_TITLE_SHARE,
                             severity=AssetCheckSeverity.WARN, metadata={"share": round(fallback_share, 4)}),
        ],
    ), line

