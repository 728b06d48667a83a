"""Structured log prefixes (`[WORKER_SCAN]`, `[WORKER_DEFERRED_ENRICHMENT]`, `[DEFERRED_QUEUE]`, ...) in one place."""

from __future__ import annotations

from soniquebay_assets.stages import deferred_kinds

DEFERRED_KINDS = deferred_kinds()


def queue_prefix(queue: str) -> str:
    """`[WORKER_SCAN]` for worker_scan: the prefix of every log line about a step of that queue."""
    return f"[{queue.upper()}]"


PREFIX_BY_DEFERRED_KIND = {kind: f"[WORKER_DEFERRED_{kind.upper()}]" for kind in DEFERRED_KINDS}
DEFERRED_QUEUE = "[DEFERRED_QUEUE]"
