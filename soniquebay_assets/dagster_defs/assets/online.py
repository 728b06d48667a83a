"""Group `online`: albums matched to MusicBrainz, artists' MusicBrainz ids and Last.fm facts, AcoustID for
tracks without a usable title or artist (on the metadata workers' queue)."""

from contextlib import closing

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
)

from soniquebay_assets import settings
from soniquebay_assets.catalog import external
from soniquebay_assets.dagster_defs.deferred_sensors import CLAIM_TAG
from soniquebay_assets.dagster_defs.metadata import log_prefix, md_table, shard_summary
from soniquebay_assets.dagster_defs.partitions import shard_asset
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.pipeline import online as pipeline
from soniquebay_assets.queues import QUEUE_BY_GROUP

CHECK_NAME = "matched_track_counts"
# The rate limits live in one process: a pool limited to 1 keeps two runs from asking MusicBrainz side by side.
SERVICES_POOL = "musicbrainz"


class OnlineConfig(Config):
    """Service URLs (empty: the SONIQUEBAY_*_URL settings) and per-run caps; capped-out work stays queued."""

    musicbrainz_url: str = ""
    lastfm_url: str = ""
    acoustid_url: str = ""
    # At MusicBrainz's 1 request/s, 100 albums is about 3-4 minutes: a run stays short, the rest waits its turn.
    max_albums: int = 100
    max_artists: int = 200
    max_tracks: int = 100


@shard_asset(
    "online",
    deps=["catalog_entities"],
    pool=SERVICES_POOL,
    check_specs=[AssetCheckSpec(CHECK_NAME, asset="external_metadata",
                                description="Every album matched to a MusicBrainz release has as many tracks as "
                                            "that release.")],
    description="MusicBrainz release match per album without a release id (search + one lookup, scored on "
                "title, artist, track count and durations), artist ids, Last.fm summary/tags/listeners/similar, "
                "AcoustID for unnamed tracks; the files' tags are never changed.",
)
def external_metadata(context: AssetExecutionContext, config: OnlineConfig,
                      catalog: CatalogResource) -> MaterializeResult:
    shards = sorted(context.partition_keys)
    # Keys are read here, at the edge, and handed to the clients, which redact them from everything they report.
    services = pipeline.open_services(
        musicbrainz_url=config.musicbrainz_url or settings.musicbrainz_url(),
        lastfm_url=config.lastfm_url or settings.lastfm_url(),
        acoustid_url=config.acoustid_url or settings.acoustid_url(),
        lastfm_api_key=settings.lastfm_api_key(), acoustid_api_key=settings.acoustid_api_key(),
        contact=settings.http_contact())
    with closing(services), catalog.connection() as conn:
        stats = pipeline.fetch_external_metadata(
            conn, shards, services=services, max_albums=config.max_albums or None,
            max_artists=config.max_artists or None, max_tracks=config.max_tracks or None,
            claim_id=context.run.tags.get(CLAIM_TAG))
        summary = pipeline.run_summary(conn)
        mismatches = external.track_count_mismatches(conn)
    context.log.info(
        f"{log_prefix(QUEUE_BY_GROUP['online'])} shards {shard_summary(shards)}: {stats.albums_selected} albums "
        f"({stats.matched} matched, {stats.candidates} candidates, {stats.unmatched} unmatched), "
        f"{stats.artists_selected} artists, {stats.tracks_selected} tracks; {stats.deferred_retry} deferred with "
        f"backoff" + (f"; offline: {', '.join(stats.offline)}" if stats.offline else ""))
    check = AssetCheckResult(
        check_name=CHECK_NAME, passed=not mismatches,
        metadata={"mismatched_albums": len(mismatches), "examples": MetadataValue.json(mismatches[:10])})
    return MaterializeResult(metadata=online_metadata(stats, summary, shards), check_results=[check])


def online_metadata(stats: pipeline.OnlineStats, summary: dict, shards: list[str]) -> dict:
    return {
        "shards": shard_summary(shards),
        "matched": stats.matched,
        "candidates": stats.candidates,
        "unmatched": stats.unmatched,
        "albums_looked_up": stats.albums_selected,
        "album_failures": stats.album_failures,
        "albums_by_status": md_table(summary["albums_by_status"], key="status", value="albums"),
        "artists_looked_up": stats.artists_selected,
        "artist_ids_found": stats.artist_ids_found,
        "lastfm_found": stats.lastfm_found,
        "lastfm_not_found": stats.lastfm_not_found,
        "tracks_fingerprinted": stats.tracks_selected,
        "tracks_identified": stats.tracks_identified,
        "genres_added": md_table(dict(stats.genres_added), key="genre", value="tracks"),
        "genre_examples": MetadataValue.json(stats.genre_examples),
        "deferred_with_backoff": stats.deferred_retry,
        "deferred_for_later_runs": stats.deferred_later,
        "offline_services": ", ".join(stats.offline) or "none",
        "disabled_services": MetadataValue.json(stats.disabled),
        "failures_by_reason": md_table(dict(stats.failures)),
        "cached_misses": md_table(summary["cached_misses"]),
        "musicbrainz_requests": stats.musicbrainz_requests,
        "musicbrainz_requests_per_album": MetadataValue.float(
            stats.as_dict()["musicbrainz_requests_per_album"]),
        "response_cache_hits": stats.cache_hits,
        "http": MetadataValue.json(stats.http),
        "seconds": round(stats.seconds, 3),
    }
