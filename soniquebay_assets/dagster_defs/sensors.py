"""The library sensor: one walk per tick, runs requested only for shards whose files changed."""


import json
from collections.abc import Sequence

from dagster import RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from soniquebay_assets.dagster_defs.jobs import scan_job
from soniquebay_assets.dagster_defs.resources import CatalogResource, LibraryResource
from soniquebay_assets.domain.layout import shard_ranges
from soniquebay_assets.pipeline.scan import plan_scan, save_snapshot


def range_tags(start: str | Sequence[str], end: str | None = None) -> dict[str, str]:
    """Tags that make one run cover start..end (or the range spanning a list of shards) in one step per asset."""
    if end is None:
        keys = [start] if isinstance(start, str) else list(start)
        start, end = min(keys), max(keys)
    return {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}


@sensor(job=scan_job, minimum_interval_seconds=60,
        description="Walks the library and requests a scan of the shards with new, changed or deleted files.")
def library_changes_sensor(
    context: SensorEvaluationContext, catalog: CatalogResource, library: LibraryResource
) -> SensorResult | SkipReason:
    try:
        roots = library.root_paths()
    except ValueError as exc:
        return SkipReason(str(exc))
    conn = catalog.connect()
    try:
        plan = plan_scan(conn, roots)
        requested = json.loads(context.cursor) if context.cursor else {}
        current = {s: plan.digests.get(s, ("empty", 0))[0] for s in plan.affected}
        fresh = sorted(s for s, d in current.items() if requested.get(s) != d)
        if not fresh:
            return SkipReason(
                f"{plan.files_seen} files walked in {plan.walk_seconds:.2f}s; no shard changed since the last request"
            )
        snapshot = save_snapshot(plan.walk, conn)  # in the catalog: the run may go to another host
    finally:
        conn.close()
    requested.update({s: current[s] for s in fresh})
    config = {"ops": {"file_inventory": {"config": {"snapshot": str(snapshot)}}}}
    requests = []
    for start, end in shard_ranges(fresh):
        in_range = [s for s in fresh if start <= s <= end]
        run_key = "scan-" + "-".join(f"{s}{current[s][:6]}" for s in in_range)[:200]
        requests.append(RunRequest(run_key=run_key, run_config=config,
                                   tags={**range_tags(start, end),
                                         "soniquebay/changed_shards": ",".join(in_range)[:1000]}))
    return SensorResult(run_requests=requests, cursor=json.dumps(requested))
