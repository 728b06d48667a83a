"""`soniquebay scan PATH...`: materialize the chain in-process for the shards that changed."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from soniquebay_assets.cli.common import add_data_dir, data_dir_from, fail, print_json, use_dagster_home
from soniquebay_assets.queues import SCAN_CHAIN_GROUPS
from soniquebay_assets.stages import cli_stages

# `--stages` name -> asset groups it materializes (from the stage registry), and "all" of them.
STAGES: dict[str, list[str]] = cli_stages()
STAGES["all"] = [group for groups in list(STAGES.values()) for group in groups]


def register(subparsers) -> None:
    parser = subparsers.add_parser("scan", help="scan music folders into the catalog (in-process Dagster run)")
    parser.add_argument("paths", nargs="+", type=Path, help="library root folder(s)")
    add_data_dir(parser)
    parser.add_argument("--stages", default="all",
                        help=f"comma list of stages: {', '.join(STAGES)} (default: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--run", action="store_true",
                        help="make a catalog-only scan a Dagster run (step logs in the UI) instead of recording "
                             "its shards' materializations without a run")
    parser.set_defaults(handler=run)


def selected_groups(stages_arg: str) -> list[str]:
    groups: list[str] = []
    for stage in (s.strip() for s in stages_arg.split(",") if s.strip()):
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")
        groups += [g for g in STAGES[stage] if g not in groups]
    return groups


def run(args: argparse.Namespace) -> int:
    roots = [p.expanduser().resolve() for p in args.paths]
    missing = [str(p) for p in roots if not p.is_dir()]
    if missing:
        return fail(f"not a folder: {', '.join(missing)} (give the folder(s) holding your music)")
    try:
        groups = selected_groups(args.stages)
    except ValueError as exc:
        return fail(str(exc))
    data = data_dir_from(args)
    use_dagster_home(data)
    show_progress = not args.no_progress and sys.stderr.isatty()
    summary = scan_library(roots, data.root, groups, show_progress=show_progress, as_run=args.run)
    if args.json:
        print_json(summary)
    else:
        _print_summary(summary)
    return 1 if summary.get("run_failed") else 0


def scan_library(roots: list[Path], data_root: Path, groups: list[str], *, show_progress: bool = False,
                 as_run: bool = False) -> dict:
    """Plan with one walk, then materialize the selected groups for the changed shards: the catalog stages alone
    without a run (unless `as_run`), anything more in one in-process run."""
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
        "deleted": 0, "skipped_unchanged": plan.unchanged_estimate, "errors_this_scan": 0,
        "walk_seconds": round(plan.walk_seconds, 3), "run_id": None, "run_failed": False,
    }
    if shards:
        runs = run_stages(groups, shards, roots, data, plan.walk, show_progress, as_run)
        summary["recorded_without_run"] = runs[0]["run_id"] is None
        summary["run_id"] = runs[0]["run_id"] if len(runs) == 1 else [r["run_id"] for r in runs]
        summary["run_failed"] = not all(r["success"] for r in runs)
        for run in runs:
            found = run["metadata"].get("file_inventory", {})
            extract = run["metadata"].get("raw_metadata", {})
            for key in ("new", "changed", "moved", "deleted"):
                summary[key] += int(found.get(key, 0))
            summary["skipped_unchanged"] += int(found.get("unchanged", 0))
            summary["errors_this_scan"] += int(extract.get("errored", 0))
        summary["stage_metadata"] = runs[0]["metadata"] if len(runs) == 1 else [r["metadata"] for r in runs]
    with connection(data.catalog_url) as conn:
        counts = queries.catalog_counts(conn)
        summary.update({"tracks": counts["tracks"], "albums": counts["albums"], "artists": counts["artists"],
                        "genres": counts["genres"], "errors": counts["errors"], "warnings": counts["warnings"],
                        "seconds": round(time.perf_counter() - started, 3), "data_dir": str(data_root)})
        inventory.finish_scan(conn, scan_id, {k: v for k, v in summary.items() if k != "stage_metadata"})
    return summary


def run_stages(groups, shards, roots, data, walk, show_progress, as_run=False) -> list[dict[str, Any]]:
    """The catalog stages alone without a run (recorded as runless materializations); else one run per
    cost-based shard range. Should the run-free work fail, a real run redoes it so the UI shows why."""
    from soniquebay_assets.catalog.db import connection
    from soniquebay_assets.domain.layout import shard_ranges
    from soniquebay_assets.pipeline.scan import save_snapshot
    from soniquebay_assets.settings import executor_choice

    if not as_run and executor_choice() != "celery" and set(groups) <= set(SCAN_CHAIN_GROUPS):
        try:
            return [scan_without_run(groups, shards, data, walk, show_progress)]
        except Exception as exc:  # noqa: BLE001 - any failure: the run below records it where people look
            print(f"scan: {exc!r}; running the same shards as a Dagster run to record the failure", file=sys.stderr)
    with connection(data.catalog_url) as conn:
        # the walk goes into the catalog: the run's inventory step may run on another host
        snapshot = save_snapshot(walk, conn)
    return [materialize_shard_range(groups, first, last, roots, data.root, snapshot, show_progress)
            for first, last in shard_ranges(shards)]


def scan_without_run(groups, shards, data, walk, show_progress) -> dict[str, Any]:
    """Run the catalog stages here while Dagster's imports and instance load in a child process, then have it
    record the shards' materializations."""
    from soniquebay_assets.catalog.db import connection
    from soniquebay_assets.pipeline import progress
    from soniquebay_assets.pipeline.scan import run_catalog_chain

    recorder = RecorderProcess()
    try:
        with _progress_bar(show_progress) as reporter:
            progress.set_reporter(reporter)
            try:
                with connection(data.catalog_url) as conn:
                    first = [g for g in groups if g == "scan"]
                    stats = run_catalog_chain(conn, first, shards, walk)
                    found = stats.get("scan")
                    if found is not None and found.new + found.changed >= RECORDER_YIELDS_FROM_FILES:
                        recorder.yield_cpu()
                    stats.update(run_catalog_chain(conn, [g for g in groups if g not in first], shards, walk))
            finally:
                progress.set_reporter(None)
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


def materialize_shard_range(groups, start, end, roots, data_root, snapshot, show_progress) -> dict[str, Any]:
    """One run of the selected groups over shards start..end: in-process, or on Celery workers when configured."""
    from soniquebay_assets.settings import executor_choice

    if executor_choice() == "celery":
        from soniquebay_assets.dagster_defs.celery_runs import materialize_through_celery

        return materialize_through_celery(groups, [start, end], roots, data_root, snapshot)
    from dagster import DagsterInstance, materialize

    from soniquebay_assets.dagster_defs.assets import assets_of_groups
    from soniquebay_assets.dagster_defs.partitions import range_tags
    from soniquebay_assets.dagster_defs.resources import CatalogResource, LibraryResource
    from soniquebay_assets.pipeline import progress

    selected = assets_of_groups(groups)
    run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    if "scan" in groups:
        run_config["ops"] = {"file_inventory": {"config": {"snapshot": str(snapshot)}}}
    resources = {"catalog": CatalogResource(data_dir_path=str(data_root)),
                 "library": LibraryResource(roots=[str(r) for r in roots])}
    with _progress_bar(show_progress) as reporter:
        progress.set_reporter(reporter)
        try:
            result = materialize(selected, instance=DagsterInstance.get(), resources=resources,
                                 run_config=run_config,
                                 tags={**range_tags(start, end), "soniquebay/origin": "cli"},
                                 raise_on_error=False)
        finally:
            progress.set_reporter(None)
    metadata: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        metadata[mat.asset_key.to_user_string()] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return {"run_id": result.run_id, "success": result.success, "metadata": metadata}


class _progress_bar:
    """A rich progress bar on stderr fed by pipeline.progress; a no-op when stderr is not a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tasks: dict[str, Any] = {}

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), transient=False)
        self.progress.start()
        return self.report

    def report(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.progress.stop()


def _print_summary(s: dict) -> None:
    lines = [
        f"Scanned {s['files_seen']} files in {s['seconds']:.1f}s "
        f"({s['new']} new, {s['changed']} changed, {s['moved']} moved, {s['deleted']} deleted, "
        f"{s['skipped_unchanged']} unchanged)",
        f"Catalog: {s['tracks']} tracks, {s['albums']} albums, {s['artists']} artists, {s['genres']} genres",
    ]
    if s["errors"]:
        lines.append(f"{s['errors']} files could not be read: `soniquebay errors` lists them with the reason")
    if s.get("run_failed"):
        lines.append(f"The Dagster run {s['run_id']} failed: open `soniquebay dev` to see the step logs")
    print("\n".join(lines))
