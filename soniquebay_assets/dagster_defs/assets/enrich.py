"""Group `metadata`: audio enrichment (tempo, key, loudness, moods, spectral features) and clean genres."""

import time

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue

from soniquebay_assets.catalog.analysis import ENRICH_KIND
from soniquebay_assets.catalog.deferred import claimed_entities
from soniquebay_assets.dagster_defs.deferred_sensors import CLAIM_TAG
from soniquebay_assets.dagster_defs.metadata import describe_each_shard, log_prefix, md_table, shard_summary
from soniquebay_assets.dagster_defs.partitions import shard_asset
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.domain.analysis.analyze import ANALYSIS_VERSION
from soniquebay_assets.pipeline.enrich import EnrichStats, enrich_shards
from soniquebay_assets.queues import WORKER_METADATA


class EnrichConfig(Config):
    workers: int = 0  # 0: one per core
    retry_errors: bool = False  # re-try tracks whose analysis failed (e.g. after installing ffmpeg)


@shard_asset(
    "metadata",
    deps=["catalog_entities"],
    description="Tempo, key (Camelot/Open Key), whole-track loudness, true peak and ReplayGain (track and album), "
                "moods and spectral features per track, plus normalized genres; new and audio-changed tracks, "
                "then those an older analysis version measured (only their outdated parts).",
)
def enriched_tracks(context: AssetExecutionContext, config: EnrichConfig, catalog: CatalogResource) -> MaterializeResult:
    started = time.perf_counter()
    shards = sorted(context.partition_keys)
    with catalog.connection() as conn:
        claim = context.run.tags.get(CLAIM_TAG)
        # a deferred run re-measures the older-version tracks it claimed (queued behind new files); a run by
        # hand or a scan's, every one of its shards
        outdated = {e for (kind, e) in claimed_entities(conn, claim, ENRICH_KIND) if kind == "track"} \
            if claim else None
        stats = enrich_shards(conn, shards, data_dir=catalog.data_dir, workers=config.workers or None,
                              outdated_ids=outdated, retry_errors=config.retry_errors)
    context.log.info(
        f"{log_prefix(WORKER_METADATA)} shards {shard_summary(shards)}: {stats.analyzed} analysed "
        f"({stats.ok} ok, {stats.partial} partial, {stats.failed} failed), {stats.skipped} skipped, "
        f"{stats.mean_seconds_per_track or 0:.3f} s/track"
    )
    describe_each_shard(context, catalog)
    return MaterializeResult(metadata=enrich_metadata(stats, shards, started))


def enrich_metadata(stats: EnrichStats, shards: list[str], started: float) -> dict:
    """Counts, timing, BPM histogram and key table as UI metadata (markdown: matplotlib is not installed)."""
    return {
        "shards": shard_summary(shards),
        "analysis_version": ANALYSIS_VERSION,
        "analyzed": stats.analyzed,
        "ok": stats.ok,
        "partial": stats.partial,
        "failed": stats.failed,
        "skipped": stats.skipped,
        "outdated_version": MetadataValue.int(stats.outdated_version),  # still to re-measure (queued)
        "parts_recomputed": md_table(stats.parts_recomputed, key="part", value="tracks"),
        "albums_gated": MetadataValue.int(stats.albums_gated),  # album gain computed again
        "mean_seconds_per_track": MetadataValue.float(float(stats.mean_seconds_per_track or 0.0)),
        "problems_by_reason": md_table(stats.reasons),
        "bpm_histogram": _histogram_md(stats.bpm_histogram),
        "key_table": _key_table_md(stats.key_table),
        "normalized_genre_rows": stats.genre_rows,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _histogram_md(histogram: dict[str, int]) -> MetadataValue:
    if not histogram:
        return MetadataValue.md("_no BPM measured yet_")
    peak = max(histogram.values())
    lines = ["| BPM | tracks | |", "|---|---:|---|"]
    lines += [f"| {b} | {n} | {'█' * max(1, round(20 * n / peak))} |" for b, n in histogram.items()]
    return MetadataValue.md("\n".join(lines))


def _key_table_md(rows: list[tuple[str, str, int]]) -> MetadataValue:
    if not rows:
        return MetadataValue.md("_no key measured yet_")
    lines = ["| key | Camelot | tracks |", "|---|---|---:|"]
    lines += [f"| {k} | {c} | {n} |" for k, c, n in rows]
    return MetadataValue.md("\n".join(lines))
