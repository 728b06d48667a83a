"""Group `cover`: album covers and artist images (local first, then Cover Art Archive and Last.fm)."""

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
)

from soniquebay_assets import settings
from soniquebay_assets.artwork.sources import DEFAULT_ORDER
from soniquebay_assets.clients.coverartarchive import DEFAULT_BASE_URL as CAA_BASE_URL
from soniquebay_assets.dagster_defs.metadata import describe_each_shard, log_prefix, md_table, shard_summary
from soniquebay_assets.dagster_defs.partitions import shard_asset
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.pipeline import covers as pipeline
from soniquebay_assets.queues import WORKER_COVER


class CoverConfig(Config):
    """Source order and service URLs (the URLs exist so a test or a mirror can stand in for the services)."""

    sources: list[str] = list(DEFAULT_ORDER)
    coverartarchive_url: str = CAA_BASE_URL
    lastfm_url: str = ""  # empty: SONIQUEBAY_LASTFM_URL, as the online stage reads it
    max_entities: int = 0  # per run, 0 = no limit (bounds a run's length when many remote lookups are due)


def _run(context: AssetExecutionContext, catalog: CatalogResource, config: CoverConfig, entity_type: str):
    shards = sorted(context.partition_keys)
    # The key is read here, at the edge, and handed to the client, which redacts it from everything it reports.
    http, sources = pipeline.open_sources(
        config.sources, lastfm_api_key=settings.lastfm_api_key(), contact=settings.http_contact(),
        caa_base_url=config.coverartarchive_url, lastfm_base_url=config.lastfm_url or settings.lastfm_url())
    fetch = pipeline.fetch_album_covers if entity_type == "album" else pipeline.fetch_artist_images
    with http, catalog.connection() as conn:
        stats = fetch(conn, shards, data_dir=catalog.data_dir, sources=sources, http=http,
                      limit=config.max_entities or None)
        summary = pipeline.coverage_summary(conn, entity_type)
        sheet = pipeline.write_contact_sheet(conn, catalog.data_dir, entity_type, context.run.run_id[:8])
        missing = pipeline.missing_cover_files(conn, catalog.data_dir, entity_type)
    context.log.info(
        f"{log_prefix(WORKER_COVER)} {entity_type} shards {shard_summary(shards)}: {stats.selected} selected, "
        f"{stats.found} found, {stats.misses} misses, {stats.skipped_cached} skipped by the negative cache; "
        f"coverage {summary['coverage_pct']}%"
    )
    metadata = {
        "shards": shard_summary(shards),
        "coverage_pct": summary["coverage_pct"],
        "with_picture": summary["covered"],
        "total": summary["total"],
        "selected": stats.selected,
        "found": stats.found,
        "misses": stats.misses,
        "skipped_negative_cache": stats.skipped_cached,
        "no_applicable_source": stats.no_source,
        "new_image_files": stats.new_files,
        "found_by_source_this_run": md_table(dict(stats.by_source), key="source", value="found"),
        "pictures_by_source": md_table(summary["by_source"], key="source", value="pictures"),
        "failures_by_reason_this_run": md_table(dict(stats.failures)),
        "cached_failures_by_reason": md_table(summary["cached_failures"]),
        "cached_misses_by_source": md_table(summary["cached_misses"]),
        "priority_this_run": md_table(dict(stats.by_priority), key="priority", value="entities"),
        "sources_order": ", ".join(config.sources),
        "disabled_sources": MetadataValue.json(stats.disabled_sources),
        "http": MetadataValue.json(stats.http),
        "seconds": round(stats.seconds, 3),
    }
    if sheet is not None:
        metadata["contact_sheet"] = MetadataValue.path(str(sheet))
    check = AssetCheckResult(check_name="cover_files_present", passed=not missing,
                             metadata={"missing_files": len(missing), "examples": MetadataValue.json(missing[:10])})
    describe_each_shard(context, catalog)
    return MaterializeResult(metadata=metadata, check_results=[check])


def _file_check(asset_name: str) -> list[AssetCheckSpec]:
    return [AssetCheckSpec("cover_files_present", asset=asset_name,
                           description="Every picture recorded in the catalog exists on disk under <data dir>/covers.")]


@shard_asset(
    "cover",
    deps=["catalog_entities"],
    check_specs=_file_check("album_covers"),
    description="Album covers: embedded pictures, folder images, Cover Art Archive, Last.fm (order from config); "
                "stored content-addressed on disk with 150/300/600 px thumbnails.",
)
def album_covers(context: AssetExecutionContext, catalog: CatalogResource, config: CoverConfig) -> MaterializeResult:
    return _run(context, catalog, config, "album")


@shard_asset(
    "cover",
    # After album_covers: the two share the remote services' rate limits, so they never run side by side.
    deps=["catalog_entities", "album_covers"],
    check_specs=_file_check("artist_images"),
    description="Artist images: artist.jpg in the artist's folders, then Last.fm (placeholders ignored).",
)
def artist_images(context: AssetExecutionContext, catalog: CatalogResource, config: CoverConfig) -> MaterializeResult:
    return _run(context, catalog, config, "artist")
