"""Celery queue names, routing and prefetch, read from the stage registry (stages.py); assets, executor config,
workers and docker all take them from here."""

from __future__ import annotations

from soniquebay_assets.stages import STAGES, by_group, cli_stages

QUEUE_BY_GROUP = {stage.group: stage.queue for stage in STAGES}
# Celery prefetch per queue (I/O-bound queues prefetch more).
PREFETCH_BY_QUEUE = {stage.queue: stage.prefetch for stage in STAGES}
ALL_QUEUES = tuple(dict.fromkeys(QUEUE_BY_GROUP.values()))  # several groups may share a queue

WORKER_SCAN = by_group("scan").queue
WORKER_EXTRACT = by_group("extract").queue
WORKER_INSERT_BULK = by_group("insert").queue
WORKER_METADATA = by_group("metadata").queue
WORKER_VECTOR = by_group("vector").queue
WORKER_COVER = by_group("cover").queue
WORKER_DEFERRED = by_group("deferred").queue
WORKER_WRITEBACK = by_group("writeback").queue

# The groups of the scan chain (inventory -> tags -> catalog entities), in order.
SCAN_CHAIN_GROUPS = tuple(cli_stages()["catalog"])

QUEUE_TAG = "dagster-celery/queue"


def op_tags_for(group: str) -> dict[str, str]:
    """op_tags that route an asset's step to its group's queue (asset `tags=` would not route)."""
    return {QUEUE_TAG: QUEUE_BY_GROUP[group]}
