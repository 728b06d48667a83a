"""Daily upkeep of the deferred queue and the catalog, returning a health report."""

from __future__ import annotations

from typing import Any

from soniquebay_assets.catalog import deferred, entities, maintenance
from soniquebay_assets.catalog.db import transaction


def run_maintenance(conn: Any, *, now: float | None = None) -> dict:
    """Reclaim stale claims, requeue due failures, drop expired and orphan rows, validate, ANALYZE, VACUUM."""
    report: dict = {"reclaimed": deferred.reclaim_stale(conn, now=now),
                    "retried": deferred.retry_failed(conn, now=now),
                    "expired": deferred.cleanup(conn, now=now),
                    "deferred_orphans": deferred.delete_orphans(conn)}
    with transaction(conn):
        report["catalog_orphans"] = entities.delete_orphans(conn)
    report["vectors"] = validate_vectors(conn)
    problems = maintenance.integrity_problems(conn)
    report["integrity"] = "ok" if not problems else problems
    maintenance.analyze(conn)
    report["vacuum"] = maintenance.vacuum_if_worth_it(conn)
    report["deferred"] = deferred.metrics(conn, now=now)
    report["healthy"] = report["integrity"] == "ok" and report["vectors"].get("ok", True) and not any(
        m["dead"] for m in report["deferred"].values())
    return report


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
