"""Structured log prefixes (`[WORKER_SCAN]`, `[WORKER_DEFERRED_ENRICHMENT]`, `[DEFERRED_QUEUE]`, ...) in one place."""

from __future__ import annotations

from soniquebay_assets import queues

DEFERRED_KINDS = ("enrichment", "vectors", "covers")

PREFIX_BY_QUEUE = {queue: f"[{queue.upper()}]" for queue in queues.ALL_QUEUES}
PREFIX_BY_DEFERRED_KIND = {kind: f"[WORKER_DEFERRED_{kind.upper()}]" for kind in DEFERRED_KINDS}
DEFERRED_QUEUE = "[DEFERRED_QUEUE]"


def prefix_for(name: str) -> str:
    """Prefix for a queue name (`worker_scan`), an asset group (`scan`) or a deferred kind (`covers`)."""
    if name in PREFIX_BY_QUEUE:
        return PREFIX_BY_QUEUE[name]
    if name in queues.QUEUE_BY_GROUP:
        return PREFIX_BY_QUEUE[queues.QUEUE_BY_GROUP[name]]
    if name in PREFIX_BY_DEFERRED_KIND:
        return PREFIX_BY_DEFERRED_KIND[name]
    if name == "deferred_queue":
        return DEFERRED_QUEUE
    raise KeyError(f"no log prefix for {name!r}")
