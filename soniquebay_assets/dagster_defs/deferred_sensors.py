"""Deferred refresh: schedules that claim due work per kind and request runs for those shards only, and run-status
sensors that settle the claim (done on success, backoff or dead letter on failure).

A claim is tagged on the run (`soniquebay/deferred_claim`), so the items a run was started for are exactly the
items marked done or failed when it ends; items of a vanished run are reclaimed by the maintenance job.
"""

import time
import uuid
from collections.abc import Iterable

from dagster import (
    AssetSelection,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    run_status_sensor,
    schedule,
)

from soniquebay_assets import settings
from soniquebay_assets.catalog import deferred
from soniquebay_assets.dagster_defs.jobs import QUIET_CONSOLE
from soniquebay_assets.dagster_defs.partitions import SHARDS, range_tags
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.domain.layout import contiguous_groups
from soniquebay_assets.logging_prefixes import DEFERRED_QUEUE, PREFIX_BY_DEFERRED_KIND
from soniquebay_assets.stages import by_group, deferred_kinds, kind_owner, stages_of_kind

# kind -> asset groups whose runs do that kind's work (the stages of the registry with that deferred kind)
KIND_GROUPS = {kind: tuple(s.group for s in stages_of_kind(kind)) for kind in deferred_kinds()}
MAX_SHARDS_PER_TICK = 16  # at most this many shards per tick: bounded work per run
MAX_RUNS_PER_TICK = 4  # ranges of neighbouring due shards, one run each
MAX_ITEMS_PER_TICK = 5000
CLAIM_TAG = "soniquebay/deferred_claim"
KIND_TAG = "soniquebay/deferred_kind"


def job_name(kind: str) -> str:
    return f"deferred_{kind}_job"


def request_for_kind(conn, kind: str, *, now: float | None = None, claim_id: str | None = None,
                     max_shards: int = MAX_SHARDS_PER_TICK, max_items: int = MAX_ITEMS_PER_TICK,
                     max_runs: int = MAX_RUNS_PER_TICK):
    """Claim due items of `kind` in the most urgent shards and describe the runs that will do them: one run per
    range of neighbouring shards with work (at most `max_runs`; the rest waits for the next tick)."""
    prefix = PREFIX_BY_DEFERRED_KIND[kind]
    urgent = deferred.pending_shards(conn, kind, limit=max_shards, now=now)
    if not urgent:
        return SkipReason(f"{prefix} no due {kind} work")
    if not kind_owner(kind).partitioned:  # one run for every due item: its assets are not split by shard
        claim = claim_id or f"deferred-{kind}-{uuid.uuid4().hex[:12]}"
        items = deferred.claim(conn, kind, claim, limit=max_items, now=now)
        if not items:
            return SkipReason(f"{prefix} due {kind} work was claimed elsewhere")
        return [RunRequest(run_key=claim, run_config=QUIET_CONSOLE,
                           tags={CLAIM_TAG: claim, KIND_TAG: kind, "soniquebay/deferred_items": str(len(items)),
                                 "soniquebay/deferred_shards": "-"})]
    rank = {shard: i for i, shard in enumerate(urgent)}
    groups = sorted(contiguous_groups(urgent), key=lambda g: min(rank[s] for s in g))[:max_runs]
    base = claim_id or f"deferred-{kind}-{uuid.uuid4().hex[:12]}"
    requests = []
    budget = max_items
    in_shard_order = sorted(groups)  # the runs are numbered and listed in shard order ...
    for shards in groups:  # ... but the item budget goes to the most urgent first (new files before re-measures)
        if budget <= 0:
            break
        number = in_shard_order.index(shards)
        claim = base if len(groups) == 1 else f"{base}-{number}"
        items = deferred.claim(conn, kind, claim, limit=budget, shards=shards, now=now)
        if not items:  # another tick took them between the two queries
            continue
        budget -= len(items)
        claimed_shards = sorted({item.shard for item in items})
        requests.append((number, RunRequest(
            run_key=claim,
            run_config=QUIET_CONSOLE,
            tags={**range_tags(claimed_shards[0], claimed_shards[-1]), CLAIM_TAG: claim, KIND_TAG: kind,
                  "soniquebay/deferred_items": str(len(items)),
                  "soniquebay/deferred_shards": ",".join(claimed_shards)[:1000]},
        )))
    if not requests:
        return SkipReason(f"{prefix} due {kind} work was claimed elsewhere")
    return [request for _, request in sorted(requests, key=lambda pair: pair[0])]


def enabled_kind_groups(kind: str) -> tuple[str, ...]:
    """KIND_GROUPS[kind] less the stages switched off: a stage with an `enabled_by` setting joins only while it
    is set, so no step goes to a queue that may have no worker (write-back's, off by default)."""
    return tuple(g for g in KIND_GROUPS[kind] if settings.stage_enabled(by_group(g).name))


def build_kind_jobs(groups: Iterable[str]) -> dict:
    """kind -> asset job over the kind's groups that have assets (`groups`), only for kinds whose owning stage
    (the one with its cadence) has them: the others wait for their stage."""
    present = set(groups)
    jobs = {}
    for kind in deferred_kinds():
        if kind_owner(kind).group not in present:
            continue
        selected = [g for g in enabled_kind_groups(kind) if g in present]
        jobs[kind] = define_asset_job(
            job_name(kind), selection=AssetSelection.groups(*selected),
            partitions_def=SHARDS if kind_owner(kind).partitioned else None,
            tags={KIND_TAG: kind, "dagster/max_retries": "0"},  # the queue backs off itself
            description=f"Deferred {kind}: the {' and '.join(selected)} assets for shards with due work.")
    return jobs


def build_kind_schedule(kind: str, job):
    minutes = settings.every_minutes(kind_owner(kind).name)

    @schedule(name=f"deferred_{kind}_schedule", cron_schedule=f"*/{minutes} * * * *", job=job,
              default_status=DefaultScheduleStatus.RUNNING,
              description=f"Every {minutes} min: runs of {job.name} over the shards with due {kind} work, if any.")
    def _kind_schedule(context: ScheduleEvaluationContext, catalog: CatalogResource):
        with catalog.connection() as conn:
            backlog = queue_backlog(conn, kind, now=_tick_time(context))
            if backlog:
                context.log.info(f"{PREFIX_BY_DEFERRED_KIND[kind]} queued {backlog} items behind new work: "
                                 f"{BACKLOG_OF_KIND[kind]}")
            requests = request_for_kind(conn, kind, now=_tick_time(context))
        for request in requests if isinstance(requests, list) else []:
            context.log.info(f"{PREFIX_BY_DEFERRED_KIND[kind]} requesting {request.run_key}: "
                             f"{request.tags['soniquebay/deferred_items']} items in shards "
                             f"{request.tags['soniquebay/deferred_shards']}")
        return requests

    return _kind_schedule


# kind -> work that waits outside the queue until a tick queues it, behind what is there
BACKLOG_OF_KIND = {"enrichment": "tracks an older analysis version measured (their outdated parts are re-measured)"}


def queue_backlog(conn, kind: str, *, now: float | None = None) -> int:
    """Queue a kind's backlog (BACKLOG_OF_KIND) at low priority; returns how many items were queued."""
    if kind not in BACKLOG_OF_KIND:
        return 0
    from soniquebay_assets.pipeline.enrich import queue_outdated

    return queue_outdated(conn, now=now)


def _tick_time(context: ScheduleEvaluationContext) -> float:
    scheduled = context.scheduled_execution_time
    return max(scheduled.timestamp(), time.time()) if scheduled is not None else time.time()


def settle_claim(conn, tags: dict, *, success: bool, error: str = "", now: float | None = None,
                 worker_died: bool = False) -> dict:
    """Mark a finished run's claimed items done, or failed/dead with backoff; a run whose process died
    releases its items at once (nothing was wrong with them)."""
    claim_id = tags.get(CLAIM_TAG)
    if not claim_id:
        return {}
    if success:
        return {"done": deferred.complete_claimed(conn, claim_id, now=now)}
    if worker_died:
        return deferred.release_claimed(conn, claim_id, error or "run process died", now=now)
    return deferred.fail_claimed(conn, claim_id, error or "run failed", now=now)


# Messages Dagster's run monitoring gives a run whose process vanished (see run_launcher.py) or never came up.
_WORKER_DIED_MARKERS = ("Detected run worker status", "run worker process", "seconds to start")
CLAIM_GRACE_S = 600.0  # a claim taken by a tick whose run never got created is released after this


def worker_died(message: str) -> bool:
    return any(marker in (message or "") for marker in _WORKER_DIED_MARKERS)


def release_ended_claims(conn, instance, *, now: float | None = None) -> dict:
    """Claims still holding items although their run ended (its settle sensor missed it) or never started:
    done for a successful run, released otherwise. Returns counts."""
    from dagster import RunsFilter

    now = time.time() if now is None else now
    counts = {"done": 0, "released": 0, "dead": 0}
    for claim_id, claimed_at in deferred.claims_in_progress(conn).items():
        runs = instance.get_runs(RunsFilter(tags={CLAIM_TAG: claim_id}), limit=5)
        if not runs:
            if now - (claimed_at or now) < CLAIM_GRACE_S:
                continue
            outcome = deferred.release_claimed(conn, claim_id, "no run was started for this claim", now=now)
        elif any(not run.is_finished for run in runs):
            continue
        elif any(run.status == DagsterRunStatus.SUCCESS for run in runs):
            outcome = {"done": deferred.complete_claimed(conn, claim_id, now=now)}
        else:
            outcome = deferred.release_claimed(conn, claim_id, f"run {runs[0].run_id[:8]} ended "
                                               f"{runs[0].status.value} without settling its items", now=now)
        for key, value in outcome.items():
            counts[key] = counts.get(key, 0) + value
    return counts


# items are due for the next stage only once settled: settle at the library sensor's pace, at most every 30 s
SETTLE_INTERVAL_S = min(30, settings.sensor_interval_s())


def build_settle_sensors(jobs: list) -> list:
    """Run-status sensors over the deferred jobs: SUCCESS -> done, FAILURE/CANCELED -> retry or dead letter."""
    if not jobs:
        return []

    @run_status_sensor(run_status=DagsterRunStatus.SUCCESS, monitored_jobs=jobs, name="deferred_done_sensor",
                       default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=SETTLE_INTERVAL_S,
                       description="Marks the deferred items of a successful deferred run done.")
    def deferred_done_sensor(context: RunStatusSensorContext, catalog: CatalogResource):
        return _settle(context, catalog, success=True)

    @run_status_sensor(run_status=DagsterRunStatus.FAILURE, monitored_jobs=jobs, name="deferred_failed_sensor",
                       default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=SETTLE_INTERVAL_S,
                       description="Backs off (or dead-letters) the deferred items of a failed deferred run.")
    def deferred_failed_sensor(context: RunStatusSensorContext, catalog: CatalogResource):
        return _settle(context, catalog, success=False)

    @run_status_sensor(run_status=DagsterRunStatus.CANCELED, monitored_jobs=jobs, name="deferred_canceled_sensor",
                       default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=SETTLE_INTERVAL_S,
                       description="A canceled deferred run counts as a failed attempt for its items.")
    def deferred_canceled_sensor(context: RunStatusSensorContext, catalog: CatalogResource):
        return _settle(context, catalog, success=False, error="run canceled")

    return [deferred_done_sensor, deferred_failed_sensor, deferred_canceled_sensor]


def _settle(context: RunStatusSensorContext, catalog: CatalogResource, *, success: bool, error: str = ""):
    """Settle this run's claim and every other claim whose run ended the same way: Dagster hands a run status
    sensor one run per call (and stops the tick at the first call returning something), while runs end
    one per shard range; so one tick settles them all and returns nothing."""
    run = context.dagster_run
    message = getattr(context.dagster_event, "message", None) or ""
    if not error and not success:
        error = f"run {run.run_id[:8]} failed: {message}"[:2000]
    with catalog.connection() as conn:
        counts = settle_claim(conn, dict(run.tags), success=success, error=error,
                              worker_died=not success and worker_died(message))
        status = run.status if run.is_finished else (DagsterRunStatus.SUCCESS if success else DagsterRunStatus.FAILURE)
        swept = settle_ended_runs(conn, context.instance, status)
    kind = run.tags.get(KIND_TAG, "?")
    context.log.info(f"{PREFIX_BY_DEFERRED_KIND.get(kind, DEFERRED_QUEUE)} run {run.run_id[:8]} "
                     f"{'succeeded' if success else 'failed'}: {counts}; other ended runs settled: {swept}")


def settle_ended_runs(conn, instance, status: DagsterRunStatus, *, now: float | None = None) -> dict:
    """Settle every claim still holding items whose run ended with `status`, as its settle sensor would."""
    from dagster import DagsterEventType, RunsFilter

    counts: dict[str, int] = {}
    for claim_id in deferred.claims_in_progress(conn):
        runs = instance.get_runs(RunsFilter(tags={CLAIM_TAG: claim_id}, statuses=[status]), limit=1)
        if not runs:
            continue
        run = runs[0]
        message = ""
        if status == DagsterRunStatus.FAILURE:
            failures = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
            message = (failures[-1].dagster_event.message or "") if failures and failures[-1].dagster_event else ""
        error = "run canceled" if status == DagsterRunStatus.CANCELED else f"run {run.run_id[:8]} failed: {message}"
        outcome = settle_claim(conn, dict(run.tags), success=status == DagsterRunStatus.SUCCESS, error=error[:2000],
                               now=now, worker_died=worker_died(message))
        for key, value in outcome.items():
            counts[key] = counts.get(key, 0) + value
    return counts


def deferred_definitions(groups: Iterable[str]) -> tuple[list, list, list]:
    """(jobs, schedules, sensors) for the deferred kinds whose asset groups have assets."""
    jobs = build_kind_jobs(groups)
    schedules = [build_kind_schedule(kind, job) for kind, job in jobs.items()]
    return list(jobs.values()), schedules, build_settle_sensors(list(jobs.values()))
