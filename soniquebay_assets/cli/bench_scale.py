"""Scale benchmark: whole catalog scans of N tiny real files on SQLite and PostgreSQL, the sensor's work, and the
similar-track index at N (or more) vectors."""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from soniquebay_assets.settings import ENV_CATALOG_URL

SENSOR_PROBE = """
import json, sys, time
from soniquebay_assets.catalog import db
from soniquebay_assets.pipeline.scan import plan_scan
with db.connection(sys.argv[1]) as conn:
    started = time.perf_counter()
    plan = plan_scan(conn, [sys.argv[2]])
    print(json.dumps({"seconds": time.perf_counter() - started, "walk_seconds": plan.walk_seconds,
                      "files": plan.files_seen, "affected_shards": len(plan.affected)}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--files", type=int, default=10_000, help="tiny audio files in the library (default 10000)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "soniquebay-scale",
                        help="where the library (built once per --files) and the composed vectors are kept")
    parser.add_argument("--catalog-url", default=None,
                        help="a PostgreSQL database: the same scans go to a scratch schema of it (dropped after)")
    parser.add_argument("--index-vectors", type=int, default=None,
                        help="vectors of the similar-index part (default --files; 0 skips it)")
    parser.add_argument("--queries", type=int, default=200, help="similar queries timed (default 200)")
    parser.add_argument("--model", default=None, help="local sentence-transformers folder (default: packaged)")


def library_for(cache: Path, files: int) -> tuple[Path, bool]:
    """The cached scale library of `files` files (built on first use); (folder, reused)."""
    from soniquebay_assets.library.synthetic import build_scale_library

    base = cache / f"library-{files}"
    library, complete = base / "library", base / ".complete"
    if complete.exists():
        return library, True
    shutil.rmtree(base, ignore_errors=True)
    build_scale_library(library, files)
    complete.touch()
    return library, False


def _event_rows(dagster_home: Path) -> int:
    """Rows of Dagster's event log (SQLite storage: one file per run plus the index) under a home."""
    import sqlite3

    total = 0
    for path in dagster_home.rglob("*.db"):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                total += conn.execute("SELECT count(*) FROM event_logs").fetchone()[0]
        except sqlite3.Error:
            continue
    return total


def _catalog_mb(target: str, data: Path) -> float:
    from soniquebay_assets.catalog import db

    if db.backend_of(target)[0] == db.POSTGRESQL:
        with db.connection(target) as conn:
            size = conn.execute(
                "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')"
            ).fetchone()[0]
        return round(int(size) / 2**20, 1)
    return round(sum(p.stat().st_size for p in data.glob("catalog.db*")) / 2**20, 1)


def _sensor_tick(target: str, library: Path, env: dict[str, str]) -> dict:
    """The sensor's work on the library as it is (walk, shard digests, compare with the catalog), in a fresh process."""
    import json

    out = subprocess.run([sys.executable, "-c", SENSOR_PROBE, target, str(library)], env=env, capture_output=True,
                         text=True, check=True)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in json.loads(out.stdout).items()}


def _album_folders(library: Path) -> list[Path]:
    return sorted(p.parent for p in library.glob("*/*/01 *"))


def measure_backend(library: Path, work: Path, files: int, env: dict[str, str], target: str) -> dict:
    """Cold, no-op, one file, 1 %, one album added, one folder renamed; the sensor's work; sizes and event rows."""
    from soniquebay_assets.cli.bench_scan import _touch_some, scan_command

    data = work / "data"
    home = data / "dagster_home"
    scans: dict[str, dict] = {}
    events: dict[str, int] = {}

    def scan(name: str) -> None:
        before = _event_rows(home) if home.exists() else 0
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        scans[name] = scan_command(library, data, "catalog", env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU of the whole process tree: on a shared machine the wall time mostly says how busy the others were
        scans[name]["cpu_seconds"] = round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 2)
        events[name] = _event_rows(home) - before

    scan("cold")
    scan("noop")
    sensor = _sensor_tick(target, library, env)
    _touch_some(library, 1)
    scan("one_file")
    _touch_some(library, max(1, files // 100))
    scan("one_percent")
    album = _album_folders(library)[0]
    added = album.with_name(album.name + " (added)")
    shutil.copytree(album, added)
    renamed_from = _album_folders(library)[-1]
    renamed_to = renamed_from.with_name(renamed_from.name + " (renamed)")
    try:
        scan("album_added")
        os.rename(renamed_from, renamed_to)
        scan("folder_renamed")
    finally:  # the cached library goes back to what it was for the next backend or run
        shutil.rmtree(added, ignore_errors=True)
        if renamed_to.exists():
            os.rename(renamed_to, renamed_from)

    def brief(summary: dict) -> dict:
        keys = ("wall_seconds", "cpu_seconds", "peak_tree_rss_mb", "walk_seconds", "files_seen", "new", "changed", "moved",
                "deleted", "tracks", "albums", "errors")
        return {k: summary[k] for k in keys if k in summary}

    return {
        "cold_s": scans["cold"]["wall_seconds"], "noop_s": scans["noop"]["wall_seconds"],
        "one_file_s": scans["one_file"]["wall_seconds"], "one_percent_s": scans["one_percent"]["wall_seconds"],
        "album_added_s": scans["album_added"]["wall_seconds"],
        "folder_renamed_s": scans["folder_renamed"]["wall_seconds"],
        "cpu_s": {name: s["cpu_seconds"] for name, s in scans.items()},
        "cold_files_per_s": round(files / scans["cold"]["wall_seconds"], 1),
        "peak_rss_mb": max(s["peak_tree_rss_mb"] for s in scans.values()),
        "peak_rss_mb_by_scan": {name: s["peak_tree_rss_mb"] for name, s in scans.items()},
        "sensor_tick_s": sensor["seconds"], "sensor_tick": sensor,
        "catalog_mb": _catalog_mb(target, data),
        "event_log_rows_added": events,
        "scans": {name: brief(s) for name, s in scans.items()},
    }  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    from soniquebay_assets.catalog import db, pg
    from soniquebay_assets.cli.bench_scan import _byte_compile_package
    from soniquebay_assets.settings import DataDir

    _byte_compile_package()
    cache = args.cache.expanduser().resolve()
    started = time.perf_counter()
    library, reused = library_for(cache, args.files)
    result: dict = {
        "benchmark": "scale", "files": args.files, "cpu_count": os.cpu_count(),
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "library": ("tiny real files (0.6 s tones; 45 % MP3, 25 % FLAC, 15 % Ogg, 15 % M4A by album; ~10 tracks "
                    "per album, ~4 albums per artist; a 20 KB picture in a third of the albums), scanned with "
                    "`soniquebay scan --stages catalog` as whole processes"),
        "library_seconds": round(time.perf_counter() - started, 1), "library_reused": reused,
        "library_mb": round(sum(p.stat().st_size for p in library.rglob("*") if p.is_file()) / 2**20, 1),
    }  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in (ENV_CATALOG_URL, "DAGSTER_HOME")}
    work = Path(tempfile.mkdtemp(prefix="scale-", dir=cache))
    try:
        sqlite_work = work / "sqlite"
        result["sqlite"] = measure_backend(library, sqlite_work, args.files, env,
                                           str(DataDir(sqlite_work / "data").catalog_path))
        if args.catalog_url:
            backend, url = db.backend_of(args.catalog_url)
            if backend != db.POSTGRESQL:
                raise db.CatalogUnavailable(f"--catalog-url {db.display_target(url)} is not a postgresql:// URL")
            with pg.scratch_schema(url, prefix="soniquebay_scale") as scratch:
                result["postgresql"] = {"catalog": pg.redact(url), **measure_backend(
                    library, work / "postgresql", args.files, {**env, ENV_CATALOG_URL: scratch}, scratch)}
            result["postgresql_cold_vs_sqlite"] = round(result["sqlite"]["cold_s"] / result["postgresql"]["cold_s"], 3)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    index_vectors = args.files if args.index_vectors is None else args.index_vectors
    if index_vectors:
        from soniquebay_assets.cli import bench_scale_index

        index = bench_scale_index.measure(cache / "vectors", index_vectors, queries=args.queries, model=args.model)
        result["index"] = index
        result.update({"similar_p50_ms": index["similar_ms"]["p50"], "similar_p95_ms": index["similar_ms"]["p95"],
                       "similar_text_p50_ms": index["similar_text_ms"]["p50"],
                       "similar_text_p95_ms": index["similar_text_ms"]["p95"],
                       "similar_recall_at_10": index["similar_recall_at_10"],
                       "similar_text_recall_at_10": index["similar_text_recall_at_10"],
                       "index_rss_mb": index["index_rss_mb"], "index_vectors": index_vectors})
    result["goals_at_1m"] = {"cold_s": "<= 240", "noop_s": "<= 20", "one_file_s": "<= 5", "sensor_tick_s": "<= 10",
                             "peak_rss_mb": "<= 1536", "similar_p95_ms": "<= 20", "similar_recall_at_10": ">= 0.95",
                             "index_rss_mb": "<= 400", "postgresql_cold_vs_sqlite": ">= 0.8"}
    result["load_average_at_end"] = round(os.getloadavg()[0], 2)
    return result
