"""Monitoring: per asset and per queue success rate, mean duration and errors by type (from the Dagster instance),
queue depth (Redis LLEN of the queue keys), live consumers, and the deferred queue's metrics."""

from __future__ import annotations

from collections import Counter
from typing import Any

from soniquebay_assets import queues
from soniquebay_assets.broker import queue_depths, queue_keys, redact  # noqa: F401 - monitoring's API


def asset_routes(assets_defs) -> dict[str, dict[str, str]]:
    """asset key -> {group, queue} from the definitions' op_tags (what the Celery executor will route by)."""
    routes: dict[str, dict[str, str]] = {}
    for assets_def in assets_defs:
        tags = dict(getattr(assets_def.node_def, "tags", {}) or {})
        for key in assets_def.keys:
            routes[key.to_user_string()] = {
                "group": assets_def.group_names_by_key.get(key, ""),
                "queue": tags.get(queues.QUEUE_TAG, "dagster"),
            }
    return routes


def op_routes(jobs) -> dict[str, dict[str, str]]:
    """op name -> {group, queue} for the jobs' ops that carry a queue tag (the deferred retry is an op, not an
    asset): merged under asset_routes, whose entries win for asset ops of the same name."""
    routes: dict[str, dict[str, str]] = {}
    for job in jobs:
        for node_def in job.all_node_defs:
            queue = (node_def.tags or {}).get(queues.QUEUE_TAG)
            if queue:
                routes.setdefault(node_def.name, {"group": "", "queue": queue})
    return routes


# A run that ended FAILURE or CANCELED without a failed step (its process died, run monitoring ended it, no worker
# served its queue): its unfinished steps, or its planned assets when no step began, count as failed with this type.
RUN_LEVEL_FAILURE = "run {status}, step unfinished"


def planned_steps_of(defs):
    """run -> the step keys its job would run (its asset selection, else the job's assets, else its ops)."""
    repository = defs.get_repository_def()

    def planned(run) -> list[str]:
        if run.asset_selection:
            return sorted(key.to_user_string() for key in run.asset_selection)
        if not repository.has_job(run.job_name):
            return []
        job = repository.get_job(run.job_name)
        keys = job.asset_layer.executable_asset_keys
        return sorted(k.to_user_string() for k in keys) if keys else sorted(n.name for n in job.all_node_defs)

    return planned


def step_stats(instance, *, limit_runs: int = 200, planned_steps=None) -> dict[str, dict[str, Any]]:
    """step key -> runs, succeeded, failed, success_rate, mean_duration_s, errors_by_type over recent runs;
    run-level failures count against the steps the run left unfinished (`planned_steps(run)` when none began)."""
    from dagster import DagsterEventType, DagsterRunStatus

    out: dict[str, dict[str, Any]] = {}
    durations: dict[str, list[float]] = {}

    def entry_of(step_key: str) -> dict[str, Any]:
        return out.setdefault(step_key, {"runs": 0, "succeeded": 0, "failed": 0, "errors_by_type": Counter()})

    for record in instance.get_run_records(limit=limit_runs):
        run = record.dagster_run
        ended_badly = run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
        failed_here = False
        unfinished: list[str] = []
        step_seen = False
        for stat in instance.get_run_step_stats(run.run_id):
            step_seen = True
            entry = entry_of(stat.step_key)
            status = stat.status.value if stat.status is not None else "IN_PROGRESS"
            entry["runs"] += 1
            if status == "SUCCESS":
                entry["succeeded"] += 1
                if stat.start_time and stat.end_time:
                    durations.setdefault(stat.step_key, []).append(stat.end_time - stat.start_time)
            elif status == "FAILURE":
                entry["failed"] += 1
                failed_here = True
            elif status == "IN_PROGRESS":
                unfinished.append(stat.step_key)
        if ended_badly and not failed_here:
            if not step_seen and planned_steps is not None:  # ended before any step began: none got done
                unfinished = planned_steps(run)
                for step_key in unfinished:
                    entry_of(step_key)["runs"] += 1
            for step_key in unfinished:
                entry = entry_of(step_key)
                entry["failed"] += 1
                entry["errors_by_type"][RUN_LEVEL_FAILURE.format(status=run.status.value)] += 1
        if failed_here:
            for log in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE):
                error = log.dagster_event.step_failure_data.error if log.dagster_event else None
                if log.step_key in out:
                    out[log.step_key]["errors_by_type"][_error_type(error)] += 1
    for key, entry in out.items():
        finished = entry["succeeded"] + entry["failed"]
        entry["success_rate"] = round(entry["succeeded"] / finished, 4) if finished else None
        samples = durations.get(key, [])
        entry["mean_duration_s"] = round(sum(samples) / len(samples), 3) if samples else None
        entry["errors_by_type"] = dict(entry["errors_by_type"])
    return out


def run_counts(instance, *, limit_runs: int = 200) -> dict[str, int]:
    """Recent runs by status (success, failure, canceled, started, queued, ...)."""
    counts: Counter = Counter()
    for record in instance.get_run_records(limit=limit_runs):
        counts[record.dagster_run.status.value.lower()] += 1
    return dict(counts)


def _error_type(error) -> str:
    if error is None:
        return "unknown"
    # user code errors are wrapped: the cause names the real exception class
    while getattr(error, "cause", None) is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    return error.cls_name or "unknown"


def per_queue(routes: dict[str, dict[str, str]], stats: dict[str, dict[str, Any]],
              depths: dict[str, int], consumers: dict[str, list[str]] | None) -> dict[str, dict[str, Any]]:
    """Roll asset step stats up to their queue."""
    report: dict[str, dict[str, Any]] = {}
    for queue in queues.ALL_QUEUES:
        assets = sorted(a for a, r in routes.items() if r["queue"] == queue)
        succeeded = sum(stats.get(a, {}).get("succeeded", 0) for a in assets)
        failed = sum(stats.get(a, {}).get("failed", 0) for a in assets)
        weighted = [(stats[a]["mean_duration_s"], stats[a]["succeeded"]) for a in assets
                    if a in stats and stats[a]["mean_duration_s"] is not None]
        errors: Counter = Counter()
        for a in assets:
            errors.update(stats.get(a, {}).get("errors_by_type", {}))
        total = sum(n for _, n in weighted)
        report[queue] = {
            "assets": assets,
            "prefetch": queues.PREFETCH_BY_QUEUE[queue],
            "depth": depths.get(queue),
            "consumers": None if consumers is None else sorted(consumers.get(queue, [])),
            "succeeded": succeeded,
            "failed": failed,
            "success_rate": round(succeeded / (succeeded + failed), 4) if succeeded + failed else None,
            "mean_duration_s": round(sum(d * n for d, n in weighted) / total, 3) if total else None,
            "errors_by_type": dict(errors),
        }
    return report


def latest_materializations(instance) -> dict[str, dict[str, float | None]]:
    """asset key -> {"timestamp": unix time of its latest materialization, "seconds": that step's `seconds`
    metadata}: every origin (CLI scans recorded without a run, runs, Celery steps) writes these events."""
    out: dict[str, dict[str, float | None]] = {}
    for record in instance.get_asset_records():
        entry = record.asset_entry.last_materialization
        if entry is None or entry.asset_materialization is None:
            continue
        seconds = entry.asset_materialization.metadata.get("seconds")
        value = getattr(seconds, "value", seconds)
        out[record.asset_entry.asset_key.to_user_string()] = {
            "timestamp": float(entry.timestamp),
            "seconds": float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None,
        }
    return out
