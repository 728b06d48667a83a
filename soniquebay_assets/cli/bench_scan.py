"""Scan benchmark: cold scan, no-op rescan and peak memory on a synthetic library of real audio files."""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from soniquebay_assets.settings import ENV_CATALOG_URL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--files", type=int, default=20_000, help="number of audio files (default 20000)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary library and data dir")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build it (default: a temp dir)")
    parser.add_argument("--catalog-url", default=None,
                        help="also scan the same library into this PostgreSQL database (in a scratch schema, "
                             "dropped after) and print its figures beside SQLite's")


def run(args: argparse.Namespace) -> dict:
    from soniquebay_assets.library.synthetic import build_library
    from soniquebay_assets.settings import DataDir

    work = Path(tempfile.mkdtemp(prefix="soniquebay-bench-", dir=args.workdir))
    try:
        library = work / "library"
        started = time.perf_counter()
        build_library(library, args.files)
        build_seconds = time.perf_counter() - started
        _warm_page_cache(library)
        # Interpreter start-up (importing Dagster and the asset modules) is paid once per process, not per scan:
        # measured apart so the scan figures are the scan's own.
        started = time.perf_counter()
        import soniquebay_assets.dagster_defs.definitions  # noqa: F401
        startup_import_seconds = time.perf_counter() - started
        os.environ.pop(ENV_CATALOG_URL, None)
        result = {
            "benchmark": "scan",
            "files": args.files,
            "cpu_count": os.cpu_count(),
            "build_seconds": round(build_seconds, 2),
            "startup_import_seconds": round(startup_import_seconds, 2),
            "catalog": "sqlite",
            **_measure(library, DataDir(work / "data").ensure(), args.files),
            "targets": {"cold_scan_files_per_s": ">= 1000", "noop_rescan_files_per_s": ">= 20000",
                        "peak_rss_mb": "< 500"},
        }
        if args.catalog_url:
            result["postgresql"] = _measure_postgresql(library, work, args)
            result["postgresql_cold_vs_sqlite"] = round(
                result["postgresql"]["cold_scan_files_per_s"] / result["cold_scan_files_per_s"], 3)
            result["targets"]["postgresql_cold_vs_sqlite"] = ">= 0.70"
            result["targets"]["postgresql_noop_rescan_files_per_s"] = ">= 20000"
        return result
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _measure(library: Path, data, files: int) -> dict:
    """Cold scan, no-op rescan, sensor tick and incremental rescan into the catalog of `data`."""
    from soniquebay_assets.cli.common import use_dagster_home
    from soniquebay_assets.cli.scan import STAGES, scan_library

    use_dagster_home(data)
    cold = scan_library([library], data.root, STAGES["catalog"])
    noop = scan_library([library], data.root, STAGES["catalog"])
    sensor_tick_seconds = _sensor_tick_seconds(library, data.root)
    touched = _touch_some(library, max(1, files // 100))
    incremental = scan_library([library], data.root, STAGES["catalog"])
    peak_rss_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return {
        "cold_scan_seconds": cold["seconds"],
        "cold_scan_files_per_s": round(files / cold["seconds"], 1),
        "cold_scan_tracks": cold["tracks"],
        "cold_scan_albums": cold["albums"],
        "cold_scan_errors": cold["errors"],
        "cold_scan_breakdown_seconds": _breakdown(cold),
        "noop_rescan_seconds": noop["seconds"],
        "noop_rescan_files_per_s": round(files / max(noop["seconds"], 1e-6), 1),
        "noop_rescan_tag_reads": noop["new"] + noop["changed"],
        "sensor_tick_seconds": sensor_tick_seconds,
        "sensor_tick_seconds_per_100k_files": round(sensor_tick_seconds * 100_000 / files, 2),
        "incremental_touched_files": touched,
        "incremental_rescan_seconds": incremental["seconds"],
        "incremental_changed_detected": incremental["changed"],
        "peak_rss_mb": round(peak_rss_mb, 1),
    }


def _measure_postgresql(library: Path, work: Path, args: argparse.Namespace) -> dict:
    """The same library scanned into a scratch schema of the PostgreSQL database (dropped afterwards)."""
    from soniquebay_assets.catalog import db, pg
    from soniquebay_assets.settings import DataDir

    backend, url = db.backend_of(args.catalog_url)
    if backend != db.POSTGRESQL:
        raise db.CatalogUnavailable(f"--catalog-url {db.display_target(url)} is not a postgresql:// URL")
    with pg.scratch_schema(url, prefix="soniquebay_bench") as scratch:
        os.environ[ENV_CATALOG_URL] = scratch
        try:
            return {"catalog": pg.redact(url), **_measure(library, DataDir(work / "data_pg").ensure(), args.files)}
        finally:
            os.environ.pop(ENV_CATALOG_URL, None)


def _breakdown(summary: dict) -> dict:
    """Where a scan's time went: the walk, each asset's own work, and the rest (Dagster run and event log)."""
    metadata = summary.get("stage_metadata") or {}
    if isinstance(metadata, list):
        metadata = {k: {"seconds": sum(m.get(k, {}).get("seconds", 0) for m in metadata)}
                    for k in ("file_inventory", "raw_metadata", "catalog_entities")}
    parts = {"walk": summary["walk_seconds"]}
    for asset in ("file_inventory", "raw_metadata", "catalog_entities"):
        parts[asset] = round(float(metadata.get(asset, {}).get("seconds", 0.0)), 3)
    parts["dagster_run_and_events"] = round(summary["seconds"] - sum(parts.values()), 3)
    return parts


def _sensor_tick_seconds(library: Path, data_root: Path) -> float:
    """One tick of the library sensor (walk + change detection) on an unchanged library."""
    from dagster import DagsterInstance, build_sensor_context

    from soniquebay_assets.dagster_defs.resources import CatalogResource, LibraryResource
    from soniquebay_assets.dagster_defs.sensors import library_changes_sensor

    context = build_sensor_context(
        instance=DagsterInstance.get(),
        resources={"catalog": CatalogResource(data_dir_path=str(data_root)),
                   "library": LibraryResource(roots=[str(library)])},
    )
    started = time.perf_counter()
    library_changes_sensor(context)
    return round(time.perf_counter() - started, 3)


def _warm_page_cache(library: Path) -> None:
    for dirpath, _, names in os.walk(library):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as handle:
                while handle.read(1 << 20):
                    pass


def _touch_some(library: Path, count: int) -> int:
    touched = 0
    for dirpath, _, names in os.walk(library):
        for name in sorted(names):
            if touched >= count:
                return touched
            path = os.path.join(dirpath, name)
            stat = os.stat(path)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
            touched += 1
    return touched
