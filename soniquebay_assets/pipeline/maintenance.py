"""Daily upkeep of the deferred queue and the catalog, returning a health report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from soniquebay_assets.catalog import deferred, entities, maintenance
from soniquebay_assets.catalog.db import transaction


@dataclass
class MaintenanceReport:
    """What one daily upkeep did and whether the catalog is healthy."""

    reclaimed: dict[str, int]
    retried: int
    expired: dict[str, int]
    deferred_orphans: int
    catalog_orphans: dict[str, int]
    vectors: dict
    integrity: str | list
    vacuum: Any  # what vacuum_if_worth_it decided and freed
    deferred: dict
    healthy: bool


def run_maintenance(conn: Any, *, now: float | None = None) -> MaintenanceReport:
    """Reclaim stale claims, requeue due failures, drop expired and orphan rows, validate, ANALYZE, VACUUM."""
    reclaimed = deferred.reclaim_stale(conn, now=now)
    retried = deferred.retry_failed(conn, now=now)
    expired = deferred.cleanup(conn, now=now)
    deferred_orphans = deferred.delete_orphans(conn)
    with transaction(conn):
        catalog_orphans = entities.delete_orphans(conn)
    vectors = validate_vectors(conn)
    problems = maintenance.integrity_problems(conn)
    integrity = "ok" if not problems else problems
    maintenance.analyze(conn)
    vacuum = maintenance.vacuum_if_worth_it(conn)
    queue_metrics = deferred.metrics(conn, now=now)
    healthy = integrity == "ok" and vectors.get("ok", True) and not any(m["dead"] for m in queue_metrics.values())
    return MaintenanceReport(reclaimed=reclaimed, retried=retried, expired=expired,
                             deferred_orphans=deferred_orphans, catalog_orphans=catalog_orphans, vectors=vectors,
                             integrity=integrity, vacuum=vacuum, deferred=queue_metrics, healthy=healthy)


def validate_vectors(conn: Any) -> dict:
    """The vector store's own validation, when that stage is installed and its table exists."""
    try:
        from soniquebay_assets.catalog import vectors
    except ImportError:
        return {"skipped": "no vectors module"}
    try:
        vectors.load_extension(conn)
        return vectors.validate(conn)
    except Exception as exc:
        return {"ok": False, "defects": [f"validation error: {type(exc).__name__}: {exc}"]}
