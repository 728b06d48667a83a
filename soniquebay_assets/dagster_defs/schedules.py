"""Schedules: the deferred kinds (see deferred_sensors.py), failed-work retry every 15 min, daily maintenance."""

import time
from collections.abc import Iterable

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    OpExecutionContext,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    job,
    op,
    schedule,
)

from soniquebay_assets import settings
from soniquebay_assets.catalog import deferred
from soniquebay_assets.dagster_defs.deferred_sensors import deferred_definitions, release_ended_claims
from soniquebay_assets.dagster_defs.jobs import QUIET_CONSOLE
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.logging_prefixes import DEFERRED_QUEUE
from soniquebay_assets.queues import op_tags_for

RETRY_EVERY_MINUTES = settings.every_minutes("deferred")
MAINTENANCE_CRON = "30 3 * * *"


@op(tags=op_tags_for("deferred"), description="Failed items past their backoff become pending; stale claims return.")
def retry_deferred_work(context: OpExecutionContext, catalog: CatalogResource) -> dict:
    with catalog.connection() as conn:
        ended = release_ended_claims(conn, context.instance)
        stale = deferred.reclaim_stale(conn)
        retried = deferred.retry_failed(conn)
    context.log.info(f"{DEFERRED_QUEUE} retry: {retried} failed items pending again; claims of ended runs "
                     f"{ended}; stale claims {stale}")
    return {"retried": retried, **stale, "ended_claims": ended}


@job(description="Requeue failed deferred work whose backoff has elapsed.", tags={"soniquebay/deferred": "retry"})
def deferred_retry_job():
    retry_deferred_work()


@schedule(name="deferred_retry_schedule", cron_schedule=f"*/{RETRY_EVERY_MINUTES} * * * *", job=deferred_retry_job,
          default_status=DefaultScheduleStatus.RUNNING,
          description=f"Every {RETRY_EVERY_MINUTES} min, when failed deferred work is due again: requeue it.")
def deferred_retry_schedule(context: ScheduleEvaluationContext, catalog: CatalogResource):
    with catalog.connection() as conn:
        due, stale = deferred.retry_counts(conn, now=_tick(context))
        # settling claims of ended runs is cheap and needs no run: done here, at every tick
        ended = (release_ended_claims(conn, context.instance, now=_tick(context))
                 if deferred.claims_in_progress(conn) else {})
    if not due and not stale:
        return SkipReason(f"{DEFERRED_QUEUE} no failed work due for retry; claims of ended runs settled: {ended}")
    return RunRequest(run_config=QUIET_CONSOLE,
                      tags={"soniquebay/deferred_due_failed": str(due), "soniquebay/deferred_stale": str(stale)})


def _tick(context: ScheduleEvaluationContext) -> float:
    scheduled = context.scheduled_execution_time
    return max(scheduled.timestamp(), time.time()) if scheduled is not None else time.time()


maintenance_job = define_asset_job("deferred_maintenance_job", selection=AssetSelection.assets("deferred_maintenance"),
                                   description="Daily catalog and deferred-queue upkeep with a health report.")


@schedule(name="deferred_maintenance_schedule", cron_schedule=MAINTENANCE_CRON, job=maintenance_job,
          default_status=DefaultScheduleStatus.RUNNING,
          description="Daily 03:30: expired items, orphans, vector validation, integrity check, ANALYZE/VACUUM.")
def deferred_maintenance_schedule(context: ScheduleEvaluationContext):
    return RunRequest(run_config=QUIET_CONSOLE)


def all_schedule_definitions(groups: Iterable[str]) -> tuple[list, list, list]:
    """(jobs, schedules, sensors) for definitions.py: deferred kinds whose groups have assets, retry, maintenance."""
    jobs, schedules, sensors = deferred_definitions(groups)
    return ([*jobs, deferred_retry_job, maintenance_job],
            [*schedules, deferred_retry_schedule, deferred_maintenance_schedule], sensors)
