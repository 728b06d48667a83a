"""The scan's runs: plan with one walk, then materialize the selected asset groups for the shards that changed.

The catalog stages alone run without a Dagster run (their functions here, Dagster loading in a recorder process
beside them, runless materializations recorded at the end); anything more is one run per shard range, in-process
or on Celery workers (`group_job` is the job those workers rebuild). The CLI, `demo`, the benchmarks and the tests
call these; a caller that shows progress passes its display in. Dagster is imported only where a run needs it: a
scan recorded without a run never loads it in the scanning process.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soniquebay_assets.pipeline.progress import ProgressDisplay, shown_on
from soniquebay_assets.queues import SCAN_CHAIN_GROUPS

if TYPE_CHECKING:
    from dagster import DagsterInstance


def scan_library(roots: list[Path], data_root: Path, groups: list[str], *, progress: ProgressDisplay | None = None,
                 as_run: bool = False) -> dict:
    """Plan with one walk, then materialize the selected groups for the changed shards: the catalog stages alone
    without a run (unless `as_run`), anything more in one in-process run; when it enriches, also the analysis
    (and vectors) of unchanged shards holding tracks an older analysis version measured."""
    from soniquebay_assets.catalog import inventory, queries
    from soniquebay_assets.catalog.db import connection
    from soniquebay_assets.pipeline.scan import plan_scan
    from soniquebay_assets.settings import DataDir

    started = time.perf_counter()
    data = DataDir(data_root).ensure()
    with connection(data.catalog_url) as conn:
        scan_id = inventory.start_scan(conn, [str(r) for r in roots], origin="cli")
        plan = plan_scan(conn, roots)
        shards = plan.affected
        if "scan" not in groups:
            shards = queries.cataloged_shards(conn)
    summary: dict[str, Any] = {
        "files_seen": plan.files_seen, "shards_changed": len(plan.affected), "new": 0, "changed": 0, "moved": 0,
        "deleted": 0, "resumed": 0, "tags_read": 0, "tracks_written": 0, "skipped_unchanged": plan.unchanged_estimate, "errors_this_scan": 0,
        "walk_seconds": round(plan.walk_seconds, 3), "run_id": None, "run_failed": False,
    }
    runs = run_stages(groups, shards, roots, data, plan.walk, progress, as_run) if shards else []
    remeasure = _outdated_shards(data, groups, shards)
    summary["shards_remeasured"] = len(remeasure)
    if remeasure:  # unchanged shards whose tracks an older analysis version measured
        runs += run_stages([g for g in groups if g in REMEASURE_GROUPS], remeasure, roots, data, plan.walk,
                           progress, as_run)
    if runs:
        summary["recorded_without_run"] = runs[0]["run_id"] is None
        summary["run_id"] = runs[0]["run_id"] if len(runs) == 1 else [r["run_id"] for r in runs]
        summary["run_failed"] = not all(r["success"] for r in runs)
        for run in runs:
            found = run["metadata"].get("file_inventory", {})
            extract = run["metadata"].get("raw_metadata", {})
            for key in ("new", "changed", "moved", "deleted", "resumed"):
                summary[key] += int(found.get(key, 0))
            summary["skipped_unchanged"] += int(found.get("unchanged", 0))
            summary["errors_this_scan"] += int(extract.get("errored", 0))
            summary["tags_read"] += int(extract.get("files_read", 0))
            summary["tracks_written"] += int(run["metadata"].get("catalog_entities", {}).get("tracks_written", 0))
        summary["stage_metadata"] = runs[0]["metadata"] if len(runs) == 1 else [r["metadata"] for r in runs]
    with connection(data.catalog_url) as conn:
        counts = queries.catalog_counts(conn)
        summary.update({"tracks": counts["tracks"], "albums": counts["albums"], "artists": counts["artists"],
                        "genres": counts["genres"], "errors": counts["errors"], "warnings": counts["warnings"],
                        "seconds": round(time.perf_counter() - started, 3), "data_dir": str(data_root)})
        inventory.finish_scan(conn, scan_id, {k: v for k, v in summary.items() if k != "stage_metadata"})
    return summary


# The groups a scan runs again over unchanged shards holding tracks an older analysis version measured: the
# analysis re-measures their outdated parts, the vectors follow what changed.
REMEASURE_GROUPS = ("metadata", "vector")


def _outdated_shards(data, groups: Sequence[str], done: Sequence[str]) -> list[str]:
    """Shards not among `done` with a track an older analysis version measured, when the scan enriches."""
    if "metadata" not in groups:
        return []
    from soniquebay_assets.catalog.analysis import outdated_shards
    from soniquebay_assets.catalog.db import connection
    from soniquebay_assets.domain.analysis.analyze import ANALYSIS_VERSION

    with connection(data.catalog_url) as conn:
        return [s for s in outdated_shards(conn, ANALYSIS_VERSION) if s not in set(done)]


def run_stages(groups, shards, roots, data, walk, progress: ProgressDisplay | None = None,
               as_run: bool = False) -> list[dict[str, Any]]:
    """The catalog stages alone without a run (recorded as runless materializations); else one run per range
    of neighbouring shards, so only the shards asked for are materialized. Should the run-free work fail, a
    real run redoes it so the UI shows why."""
    from soniquebay_assets.catalog.db import connection
    from soniquebay_assets.domain.layout import contiguous_groups
    from soniquebay_assets.pipeline.scan import save_snapshot
    from soniquebay_assets.settings import executor_choice

    if not as_run and executor_choice() != "celery" and set(groups) <= set(SCAN_CHAIN_GROUPS):
        try:
            return [scan_without_run(groups, shards, data, walk, progress)]
        except Exception as exc:  # noqa: BLE001 - any failure: the run below records it where people look
            print(f"scan: {exc!r}; running the same shards as a Dagster run to record the failure", file=sys.stderr)
    snapshot = None
    if "scan" in groups:
        with connection(data.catalog_url) as conn:
            # the walk goes into the catalog: the run's inventory step may run on another host
            snapshot = save_snapshot(walk, conn)
    return [materialize_shard_range(groups, group[0], group[-1], roots, data.root, snapshot, progress)
            for group in contiguous_groups(shards)]


def scan_without_run(groups, shards, data, walk, progress: ProgressDisplay | None = None) -> dict[str, Any]:
    """Run the catalog stages here while Dagster's imports and instance load in a child process, then have it
    record the shards' materializations."""
    from soniquebay_assets.catalog.db import connection
    from soniquebay_assets.pipeline.scan import run_catalog_chain

    recorder = RecorderProcess()
    try:
        with shown_on(progress):
            with connection(data.catalog_url) as conn:
                first = [g for g in groups if g == "scan"]
                stats = run_catalog_chain(conn, first, shards, walk)
                found = stats.get("scan")
                if found is not None and found.new + found.changed >= RECORDER_YIELDS_FROM_FILES:
                    recorder.yield_cpu()
                stats.update(run_catalog_chain(conn, [g for g in groups if g not in first], shards, walk))
        return recorder.record(stats, shards, data.root)
    finally:
        recorder.stop()


# From this many files to read, the recorder loads at the lowest CPU priority: the tag readers keep both cores
# and the loading fills the core the single-threaded catalog stage leaves idle (a cold 20,000-file scan 7.3-7.7 s
# -> 7.1 s). Below it, the loading is what the scan waits for, so it keeps its share (2,000 files: 1.8 s at
# normal priority, 1.9-2.1 s at the lowest).
RECORDER_YIELDS_FROM_FILES = 10_000


class RecorderProcess:
    """A child process that imports Dagster and opens the instance while the stages run here, then records their
    stats. A thread did the same but shared this process's GIL with the inventory and catalog stages, which are
    Python work, and could not be given a lower CPU priority than the tag readers."""

    def __init__(self) -> None:
        import multiprocessing

        from soniquebay_assets.library.process_pool import START_METHOD

        context = multiprocessing.get_context(START_METHOD)
        self._pipe, child_end = context.Pipe()
        self._process = context.Process(target=_record_in_child, args=(child_end, os.getpid(), dict(os.environ)),
                                        name="soniquebay-dagster-recorder", daemon=True)
        self._process.start()
        child_end.close()

    def yield_cpu(self) -> None:
        """Lowest CPU priority from now on: the loading then runs on cores the stages leave idle."""
        try:
            os.setpriority(os.PRIO_PROCESS, self._process.pid, 19)
        except OSError:
            pass  # a platform without priorities: the loading just competes

    def record(self, stats: dict[str, Any], shards, data_root: Path) -> dict[str, Any]:
        """Hand the stages' stats over and wait for the recording: a run's result shape (see runless.py)."""
        self._pipe.send((stats, list(shards), str(data_root)))
        try:
            outcome, payload = self._pipe.recv()
        except EOFError:
            raise RuntimeError("the Dagster recorder process died before recording the scan") from None
        if outcome != "ok":
            raise RuntimeError(f"recording the scan in Dagster failed: {payload}")
        return payload

    def stop(self) -> None:
        if self._process.is_alive():
            try:
                self._pipe.send(None)  # nothing (more) to record
            except OSError:
                pass
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._pipe.close()


def _record_in_child(pipe, owner_pid: int, environ: dict[str, str]) -> None:
    from soniquebay_assets.library.process_guard import exit_with_owner

    os.environ.update(environ)  # DAGSTER_HOME and the data dir, as set for this scan
    exit_with_owner(owner_pid)
    failure = None
    try:
        from soniquebay_assets.dagster_defs.runless import open_recorder, record_without_run

        instance = open_recorder()
    except Exception as exc:  # noqa: BLE001 - told to the scan, which then records through a run
        failure = f"{type(exc).__name__}: {exc}"
    try:
        job = pipe.recv()
    except EOFError:
        return
    if job is None:
        return
    try:
        if failure:
            raise RuntimeError(failure)
        stats, shards, data_root = job
        pipe.send(("ok", record_without_run(instance, stats, shards, Path(data_root))))
    except Exception as exc:  # noqa: BLE001
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))


def materialize_shard_range(groups, start, end, roots, data_root, snapshot,
                            progress: ProgressDisplay | None = None) -> dict[str, Any]:
    """One run of the selected groups over shards start..end: in-process, or on Celery workers when configured."""
    from soniquebay_assets.settings import executor_choice

    if executor_choice() == "celery":
        return materialize_through_celery(groups, [start, end], roots, data_root, snapshot)
    from dagster import DagsterInstance, materialize

    from soniquebay_assets.dagster_defs.assets import assets_of_groups
    from soniquebay_assets.dagster_defs.partitions import range_tags
    from soniquebay_assets.dagster_defs.resources import CatalogResource, LibraryResource

    selected = assets_of_groups(groups)
    run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    if "scan" in groups:
        run_config["ops"] = {"file_inventory": {"config": {"snapshot": str(snapshot)}}}
    resources = {"catalog": CatalogResource(data_dir_path=str(data_root)),
                 "library": LibraryResource(roots=[str(r) for r in roots])}
    with shown_on(progress):
        result = materialize(selected, instance=DagsterInstance.get(), resources=resources, run_config=run_config,
                             tags={**range_tags(start, end), "soniquebay/origin": "cli"}, raise_on_error=False)
    return {"run_id": result.run_id, "success": result.success, "metadata": _materialized(result)}


def _materialized(result) -> dict[str, dict[str, Any]]:
    """asset -> the metadata of its materialization in a finished run (plain values)."""
    metadata: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        metadata[mat.asset_key.to_user_string()] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return metadata


# --------------------------------------------------------------------------- the same runs on Celery workers
# `materialize()` always runs in-process; a Celery run needs a job that workers can rebuild from a module, so
# `group_job` is the reconstructor workers call with the same arguments.


def group_job_name(groups: Sequence[str]) -> str:
    return "celery_" + "_".join(groups)


def group_job(groups: Sequence[str], resources: dict[str, Any] | None = None):
    """An asset job over `groups` with the Celery executor (called again inside every worker)."""
    from dagster import AssetSelection, Definitions, define_asset_job

    from soniquebay_assets.dagster_defs.assets import all_assets
    from soniquebay_assets.dagster_defs.executor import build_executor
    from soniquebay_assets.dagster_defs.partitions import SHARDS
    from soniquebay_assets.dagster_defs.resources import default_resources

    name = group_job_name(groups)
    job = define_asset_job(name, selection=AssetSelection.groups(*groups), partitions_def=SHARDS,
                           executor_def=build_executor("celery"))
    return Definitions(assets=all_assets(), jobs=[job],
                       resources=resources or default_resources()).resolve_job_def(name)


def reconstructable_group_job(groups: Sequence[str]):
    from soniquebay_assets.dagster_defs.internals import build_reconstructable_job

    return build_reconstructable_job(__name__, "group_job", reconstructable_args=(tuple(groups),))


def celery_run_config(roots: Sequence[Path], data_root: Path, snapshot: Path | None, groups: Sequence[str],
                      *, executor_config: dict | None = None) -> dict[str, Any]:
    """Resource config travels in the run config so every worker reads the same library and catalog: the URL of
    a server catalog (each worker keeps its own data dir), else the data dir holding the catalog file."""
    from soniquebay_assets.settings import DataDir

    data = DataDir(Path(data_root))
    catalog_config = {"data_dir_path": str(data_root)} if data.catalog_is_local_file \
        else {"catalog_url": data.catalog_url}
    run_config: dict[str, Any] = {
        "resources": {
            "catalog": {"config": catalog_config},
            "library": {"config": {"roots": [str(r) for r in roots]}},
        },
        "execution": {"config": {"celery": dict(executor_config or {})}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    if snapshot is not None and "scan" in groups:
        run_config["ops"] = {"file_inventory": {"config": {"snapshot": str(snapshot)}}}
    return run_config


def materialize_through_celery(groups: Sequence[str], shards: Sequence[str], roots: Sequence[Path],
                               data_root: Path, snapshot: Path | None, *, instance: DagsterInstance | None = None,
                               executor_config: dict | None = None, tags: dict | None = None,
                               job: Any = None, extra_resource_config: dict | None = None) -> dict[str, Any]:
    """Same result shape as materialize_shard_range: run id, success, metadata per asset (and the failure)."""
    from dagster import DagsterInstance, execute_job

    from soniquebay_assets.dagster_defs.partitions import range_tags

    instance = instance or DagsterInstance.get()
    run_tags = {**range_tags(list(shards)), "soniquebay/origin": "cli", "soniquebay/executor": "celery",
                **(tags or {})}
    run_config = celery_run_config(roots, data_root, snapshot, groups, executor_config=executor_config)
    for resource, config in (extra_resource_config or {}).items():
        run_config["resources"][resource]["config"].update(config)
    with execute_job(job or reconstructable_group_job(groups), instance=instance, run_config=run_config,
                     tags=run_tags, raise_on_error=False) as result:
        failure = None if result.success else result.get_run_failure_event().message
        return {"run_id": result.run_id, "success": result.success, "metadata": _materialized(result),
                "failure": failure}
