"""Group `deferred`: daily upkeep of the deferred queue and the catalog, with a health report as metadata."""

import time

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from soniquebay_assets.dagster_defs.assets import all_assets
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.logging_prefixes import DEFERRED_QUEUE
from soniquebay_assets.pipeline.maintenance import run_maintenance
from soniquebay_assets.queues import op_tags_for


def _deferred_table(metrics: dict) -> MetadataValue:
    lines = ["| kind | pending | due | in progress | failed | dead | done | oldest pending (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for kind, m in metrics.items():
        lines.append(f"| {kind} | {m['pending']} | {m['due']} | {m['in_progress']} | {m['failed']} | {m['dead']} "
                     f"| {m['done']} | {m['oldest_pending_age_s'] if m['oldest_pending_age_s'] is not None else '-'} |")
    return MetadataValue.md("\n".join(lines))


def _queue_table(instance) -> MetadataValue:
    """Per queue over recent runs of every stage's assets: success rate, mean step duration, depth (when the
    broker answers), errors."""
    from soniquebay_assets import settings
    from soniquebay_assets.dagster_defs import monitoring

    depths, _problem = monitoring.queue_depths(settings.broker_url(), timeout_s=1.0)
    report = monitoring.per_queue(monitoring.asset_routes(all_assets()), monitoring.step_stats(instance, limit_runs=200),
                                  depths, None)
    lines = ["| queue | assets | success rate | mean s | depth | errors |", "|---|---|---:|---:|---:|---|"]
    for queue, q in report.items():
        rate = "-" if q["success_rate"] is None else f"{q['success_rate']:.0%}"
        errors = ", ".join(f"{k} x{v}" for k, v in q["errors_by_type"].items()) or "-"
        lines.append(f"| {queue} | {', '.join(q['assets']) or '-'} | {rate} | {q['mean_duration_s'] or '-'} "
                     f"| {'-' if q['depth'] is None else q['depth']} | {errors} |")
    return MetadataValue.md("\n".join(lines))


@asset(
    group_name="deferred",
    op_tags=op_tags_for("deferred"),
    description="Daily upkeep: stale claims, failed retries, expired/orphan rows, vector validation, "
                "integrity check, ANALYZE/VACUUM; metadata is the health report.",
)
def deferred_maintenance(context: AssetExecutionContext, catalog: CatalogResource) -> MaterializeResult:
    started = time.perf_counter()
    with catalog.connection() as conn:
        report = run_maintenance(conn)
    queue_table = _queue_table(context.instance)
    context.log.info(f"{DEFERRED_QUEUE} maintenance: reclaimed {report.reclaimed}, retried {report.retried}, "
                     f"expired {report.expired}, orphans {report.deferred_orphans}, "
                     f"integrity {report.integrity}, vacuum {report.vacuum}")
    return MaterializeResult(metadata={
        "healthy": report.healthy,
        "integrity_check": str(report.integrity),
        "deferred_queue": _deferred_table(report.deferred),
        "queue_health": queue_table,
        "reclaimed": MetadataValue.json(report.reclaimed),
        "retried": report.retried,
        "expired_deleted": MetadataValue.json(report.expired),
        "deferred_orphans_deleted": report.deferred_orphans,
        "catalog_orphans_deleted": MetadataValue.json(report.catalog_orphans),
        "vector_validation": MetadataValue.json(report.vectors),
        "vacuum": report.vacuum,
        "seconds": round(time.perf_counter() - started, 3),
    })
