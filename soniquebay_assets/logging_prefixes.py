"""Structured log prefixes (`[WORKER_SCAN]`, `[WORKER_DEFERRED_ENRICHMENT]`, `[DEFERRED_QUEUE]`, ...) in one place."""

from __future__ import annotations

from soniquebay_assets import queues

DEFERRED_KINDS = ("enrichment", "vectors", "covers")

PREFIX_BY_QUEUE = {queue: f"[{queue.upper()}]" for queue in queues.ALL_QUEUES}
PREFIX_BY_DEFERRED_KIND = {kind: f"[WORKER_DEFERRED_{kind.upper()}]" for kind in DEFERRED_KINDS}
DEFERRED_QUEUE = "[DEFERRED_QUEUE]"
