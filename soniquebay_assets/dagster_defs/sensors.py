"""The library sensor: one walk per tick, runs requested only for shards whose files changed."""

import json
import time

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from soniquebay_assets import settings
from soniquebay_assets.dagster_defs.jobs import QUIET_CONSOLE, scan_job
from soniquebay_assets.dagster_defs.partitions import range_tags
from soniquebay_assets.dagster_defs.resources import CatalogResource, LibraryResource
from soniquebay_assets.domain.layout import contiguous_groups
from soniquebay_assets.pipeline.scan import plan_scan, save_snapshot

MAX_SCAN_RUNS_PER_TICK = 32
RESCAN_AFTER_S = max(60, 10 * settings.sensor_interval_s())


def _requested_digest(entry) -> str | None:
    """Cursor entries are [digest, requested at]; older cursors held the digest alone."""
    return entry[0] if isinstance(entry, list) else entry


def _requested_at(entry) -> float:
    return float(entry[1]) if isinstance(entry, list) and len(entry) > 1 else 0.0


def _shards_of_active_scans(instance) -> set[str]:
    from dagster import DagsterRunStatus, RunsFilter

    active = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    shards: set[str] = set()
    for run in instance.get_runs(RunsFilter(job_name=scan_job.name, statuses=active)):
        shards.update(filter(None, run.tags.get("soniquebay/changed_shards", "").split(",")))
    return shards


@sensor(job=scan_job, minimum_interval_seconds=settings.sensor_interval_s(),
        default_status=DefaultSensorStatus.RUNNING,  # a deployment scans with no manual step
        description="Walks the library and requests a scan of the shards with new, changed or deleted files.")
def library_changes_sensor(
    context: SensorEvaluationContext, catalog: CatalogResource, library: LibraryResource
) -> SensorResult | SkipReason:
    try:
        roots = library.root_paths()
    except ValueError as exc:
        return SkipReason(str(exc))
    with catalog.connection() as conn:
        plan = plan_scan(conn, roots)
        requested = json.loads(context.cursor) if context.cursor else {}
        current = {s: plan.digests.get(s, ("empty", 0))[0] for s in plan.affected}
        now = time.time()
        fresh = sorted(s for s, d in current.items() if _requested_digest(requested.get(s)) != d)
        # requested long ago and still not scanned: its run failed (no worker, a crash); ask again unless a scan
        # of it is still queued or running
        stale = [s for s in current if s not in fresh and now - _requested_at(requested.get(s)) >= RESCAN_AFTER_S]
        if stale:
            busy = _shards_of_active_scans(context.instance)
            fresh = sorted(set(fresh) | {s for s in stale if s not in busy})
        if not fresh:
            return SkipReason(
                f"{plan.files_seen} files walked in {plan.walk_seconds:.2f}s; no shard changed since the last request"
            )
        snapshot = save_snapshot(plan.walk, conn)  # in the catalog: the run may go to another host
    # one run per range of neighbouring changed shards: exactly the changed shards get materialized; past
    # MAX_SCAN_RUNS_PER_TICK the other shards stay out of the cursor for the next tick
    groups = contiguous_groups(fresh)[:MAX_SCAN_RUNS_PER_TICK]
    config = {**QUIET_CONSOLE, "ops": {"file_inventory": {"config": {"snapshot": str(snapshot)}}}}
    requests = []
    for in_range in groups:
        requested.update({s: [current[s], now] for s in in_range})
        run_key = f"scan-{int(now * 1000)}-" + "-".join(f"{s}{current[s][:6]}" for s in in_range)[:200]
        requests.append(RunRequest(run_key=run_key, run_config=config,
                                   tags={**range_tags(in_range[0], in_range[-1]),
                                         "soniquebay/changed_shards": ",".join(in_range)[:1000]}))
    return SensorResult(run_requests=requests, cursor=json.dumps(requested))
