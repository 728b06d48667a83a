"""Group `writeback`: opt-in write-back of ReplayGain, BPM, key, MusicBrainz ids and folder covers into the files
(off unless SONIQUEBAY_WRITE_TAGS names what to write, or the run config does)."""

import time

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue

from soniquebay_assets import settings
from soniquebay_assets.catalog.deferred import claimed_entities
from soniquebay_assets.dagster_defs.deferred_sensors import CLAIM_TAG
from soniquebay_assets.dagster_defs.metadata import log_prefix, md_table, shard_summary
from soniquebay_assets.dagster_defs.partitions import shard_asset
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.domain.tag_writing import parse_groups
from soniquebay_assets.pipeline.write_back import (
    WriteBackRequest,
    WriteBackStats,
    album_tracks,
    default_options,
    write_back,
)
from soniquebay_assets.queues import WORKER_WRITEBACK


class WriteBackConfig(Config):
    fields: list[str] = []  # replaygain, bpm, key, musicbrainz_ids, covers, all; empty: SONIQUEBAY_WRITE_TAGS
    dry_run: bool = False  # count what would change, write nothing
    break_hard_links: bool = False  # also write files that share their data with other names (their own copy)


@shard_asset(
    "writeback",
    # after what it writes: the analysis, the online ids (same deferred run) and the covers
    deps=["enriched_tracks", "external_metadata", "album_covers"],
    description="Opt-in: ReplayGain, BPM, key, MusicBrainz ids and folder cover.jpg written into the files where "
                "players read them (SONIQUEBAY_WRITE_TAGS; nothing is written when it is empty). Journaled: "
                "`soniquebay write-tags --undo` restores the old values.",
)
def tags_written_back(context: AssetExecutionContext, config: WriteBackConfig,
                      catalog: CatalogResource) -> MaterializeResult:
    started = time.perf_counter()
    shards = sorted(context.partition_keys)
    try:
        groups = parse_groups(config.fields or settings.write_tags_fields())
    except ValueError as exc:
        raise ValueError(f"{'the run config fields' if config.fields else settings.ENV_WRITE_TAGS}: {exc}") from None
    if not groups:
        context.log.info(f"{log_prefix(WORKER_WRITEBACK)} write-back is off: nothing written")
        return MaterializeResult(metadata={
            "enabled": False, "shards": shard_summary(shards),
            "how_to_enable": f"set {settings.ENV_WRITE_TAGS}=replaygain,bpm,key (or all) on the workers of the "
                             f"{WORKER_WRITEBACK} queue, with the music folder mounted read-write"})
    options = default_options(groups, key_notation=settings.write_tags_key_notation(),
                              overwrite=settings.write_tags_overwrite())
    with catalog.connection() as conn:
        claim = context.run.tags.get(CLAIM_TAG)
        # a deferred enrichment run writes the tracks it was started for; a materialization by hand, every track
        # of its shards
        track_ids = None
        if claim:
            track_ids = sorted(e for (kind, e) in claimed_entities(conn, claim, "enrichment") if kind == "track")
            if "replaygain" in groups:  # a track measured anew changes its album's gain: the album follows
                track_ids = album_tracks(conn, track_ids)
        stats = write_back(conn, WriteBackRequest(options, track_ids=track_ids, shards=shards,
                                                  dry_run=config.dry_run, origin="dagster",
                                                  covers_dir=catalog.data_dir.covers,
                                                  break_hard_links=config.break_hard_links))
    context.log.info(
        f"{log_prefix(WORKER_WRITEBACK)} shards {shard_summary(shards)}: {stats.files_written} files "
        f"{'would be ' if stats.dry_run else ''}written, {stats.files_unchanged} unchanged, {stats.files_failed} "
        f"failed, {stats.covers_written} covers (run {stats.run_id})")
    return MaterializeResult(metadata=write_back_metadata(stats, shards, started))


def write_back_metadata(stats: WriteBackStats, shards: list[str], started: float) -> dict:
    """Counts by outcome, field and reason, and the journal run to undo, as UI metadata."""
    return {
        "enabled": True,
        "shards": shard_summary(shards),
        "fields": ", ".join(stats.groups),
        "dry_run": stats.dry_run,
        "journal_run": MetadataValue.int(stats.run_id or 0),  # undo: soniquebay write-tags --undo --run N
        "tracks": stats.tracks_selected,
        "files_written": stats.files_written,
        "files_unchanged": stats.files_unchanged,
        "files_skipped": stats.files_skipped,
        "files_failed": stats.files_failed,
        "covers_written": stats.covers_written,
        "fields_written": md_table(stats.fields_written, "field", "files"),
        "fields_kept": md_table(stats.fields_kept, "field", "files"),
        # e.g. not measured yet (re-run enrichment): the tracks whose loudness waits for the new meter
        "not_written_by_reason": md_table(stats.tracks_not_written_by_reason, "reason", "tracks"),
        "errors_by_reason": md_table(stats.errors_by_reason),
        "skipped_by_reason": md_table(stats.skipped_by_reason),
        "formats_written": md_table(stats.formats_written, "format", "files"),
        "replaygain_source": stats.replaygain_source,
        "seconds": round(time.perf_counter() - started, 3),
    }
