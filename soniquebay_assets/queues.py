"""The one place Celery queue names live; assets, executor config, workers and docker all read them from here."""

from __future__ import annotations

WORKER_SCAN = "worker_scan"
WORKER_EXTRACT = "worker_extract"
WORKER_INSERT_BULK = "worker_insert_bulk"
WORKER_METADATA = "worker_metadata"
WORKER_VECTOR = "worker_vector"
WORKER_COVER = "worker_cover"
WORKER_DEFERRED = "worker_deferred"
WORKER_PLAYLISTS = "worker_playlists"

QUEUE_BY_GROUP = {
    "scan": WORKER_SCAN,
    "extract": WORKER_EXTRACT,
    "insert": WORKER_INSERT_BULK,
    "metadata": WORKER_METADATA,
    "vector": WORKER_VECTOR,
    "cover": WORKER_COVER,
    "deferred": WORKER_DEFERRED,
    "online": WORKER_METADATA,  # MusicBrainz / Last.fm / AcoustID lookups share the metadata workers
    "playlists": WORKER_PLAYLISTS,
}

# Celery prefetch per queue, from the original design (I/O-bound queues prefetch more).
PREFETCH_BY_QUEUE = {
    WORKER_SCAN: 4,
    WORKER_EXTRACT: 2,
    WORKER_INSERT_BULK: 2,
    WORKER_COVER: 1,
    WORKER_METADATA: 2,
    WORKER_VECTOR: 1,
    WORKER_DEFERRED: 2,
    WORKER_PLAYLISTS: 1,
}

ALL_QUEUES = tuple(dict.fromkeys(QUEUE_BY_GROUP.values()))  # several groups may share a queue

# The groups of the scan chain (inventory -> tags -> catalog entities), in order.
SCAN_CHAIN_GROUPS = ("scan", "extract", "insert")

QUEUE_TAG = "dagster-celery/queue"


def op_tags_for(group: str) -> dict[str, str]:
    """op_tags that route an asset's step to its group's queue (asset `tags=` would not route)."""
    return {QUEUE_TAG: QUEUE_BY_GROUP[group]}
