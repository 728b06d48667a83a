"""The library sensor: one walk per tick, runs requested only for shards whose files changed."""


import json

from dagster import RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from soniquebay_assets.dagster_defs.jobs import scan_job
from soniquebay_assets.dagster_defs.resources import CatalogResource, LibraryResource
from soniquebay_assets.pipeline.scan import plan_scan, save_snapshot


def range_tags(shards: list[str]) -> dict[str, str]:
    """Tags that make one run cover the contiguous shard range spanning `shards`."""
    return {ASSET_PARTITION_RANGE_START_TAG: min(shards), ASSET_PARTITION_RANGE_END_TAG: max(shards)}


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
    finally:
        conn.close()
    requested = json.loads(context.cursor) if context.cursor else {}
    current = {s: plan.digests.get(s, ("empty", 0))[0] for s in plan.affected}
    fresh = sorted(s for s, d in current.items() if requested.get(s) != d)
    if not fresh:
        return SkipReason(
            f"{plan.files_seen} files walked in {plan.walk_seconds:.2f}s; no shard changed since the last request"
        )
    snapshot = save_snapshot(plan.walk, catalog.data_dir.snapshots)
    requested.update({s: current[s] for s in fresh})
    run_key = "scan-" + "-".join(f"{s}{current[s][:6]}" for s in fresh)[:200]
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=run_key,
                run_config={"ops": {"file_inventory": {"config": {"snapshot": str(snapshot)}}}},
                tags={**range_tags(fresh), "soniquebay/changed_shards": ",".join(fresh)[:1000]},
            )
        ],
        cursor=json.dumps(requested),
    )
