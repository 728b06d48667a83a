"""Celery benchmark: the same library scanned in-process and through Celery workers; wall time and per-step overhead.

Starts its own redis-server on a free port (unless --broker is given) and one worker per scan-chain queue, and
stops them at the end. Worker start-up time is reported apart: it is paid once, not per run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from soniquebay_assets.queues import SCAN_CHAIN_GROUPS

SCAN_GROUPS = list(SCAN_CHAIN_GROUPS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--files", type=int, default=200, help="number of audio files (default 200)")
    parser.add_argument("--broker", default=None,
                        help="use this Redis broker (with your own workers) instead of starting redis-server")
    parser.add_argument("--keep", action="store_true", help="keep the temporary library and data dirs")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build it (default: a temp dir)")


def run(args: argparse.Namespace) -> dict:
    from soniquebay_assets.library.synthetic import build_library

    work = Path(tempfile.mkdtemp(prefix="soniquebay-bench-celery-", dir=args.workdir))
    started_procs: list[subprocess.Popen] = []
    try:
        library = build_library(work / "library", args.files)
        in_process = _measure(work / "data-inprocess", library, celery_broker=None)
        broker = args.broker
        startup_s = None
        if broker is None:
            t0 = time.perf_counter()
            broker, started_procs = _start_local_cluster(work)
            startup_s = round(time.perf_counter() - t0, 2)
        celery = _measure(work / "data-celery", library, celery_broker=broker)
        return {
            "benchmark": "celery",
            "files": args.files,
            "cpu_count": os.cpu_count(),
            "in_process": in_process,
            "celery": {**celery, "cluster_startup_seconds": startup_s},
            "celery_minus_in_process_wall_seconds": round(celery["wall_seconds"] - in_process["wall_seconds"], 3),
            "same_catalog": in_process["tracks"] == celery["tracks"] and in_process["albums"] == celery["albums"],
        }
    finally:
        for proc in reversed(started_procs):
            stop_process_group(proc)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _measure(data_root: Path, library: Path, *, celery_broker: str | None) -> dict[str, Any]:
    """One cold scan of the chain; wall time of the run, each step's own duration, and the difference per step."""
    from dagster import DagsterInstance

    from soniquebay_assets.catalog import queries
    from soniquebay_assets.catalog.db import connection
    from soniquebay_assets.cli.common import use_dagster_home
    from soniquebay_assets.pipeline.scan import plan_scan, save_snapshot
    from soniquebay_assets.settings import DataDir

    data = DataDir(data_root).ensure()
    use_dagster_home(data)
    with connection(data.catalog_url) as conn:
        plan = plan_scan(conn, [library])
        snapshot = save_snapshot(plan.walk, conn)
    started = time.perf_counter()
    if celery_broker is None:
        from soniquebay_assets.dagster_defs.scan_runs import materialize_shard_range

        result = materialize_shard_range(SCAN_GROUPS, min(plan.affected), max(plan.affected), [library], data.root,
                                         snapshot)
    else:
        from soniquebay_assets.dagster_defs.scan_runs import materialize_through_celery

        os.environ["SONIQUEBAY_BROKER_URL"] = celery_broker
        os.environ["SONIQUEBAY_RESULT_BACKEND"] = celery_broker
        result = materialize_through_celery(SCAN_GROUPS, plan.affected, [library], data.root, snapshot)
    wall = time.perf_counter() - started
    with DagsterInstance.get() as instance:
        steps = {s.step_key: round(s.end_time - s.start_time, 3) for s in instance.get_run_step_stats(result["run_id"])
                 if s.start_time and s.end_time}
    with connection(data.catalog_url) as conn:
        counts = queries.catalog_counts(conn)
    return {
        "success": result["success"],
        "wall_seconds": round(wall, 3),
        "step_seconds": steps,
        "per_step_overhead_seconds": round((wall - sum(steps.values())) / max(len(steps), 1), 3),
        "tracks": counts["tracks"],
        "albums": counts["albums"],
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_local_cluster(work: Path) -> tuple[str, list[subprocess.Popen]]:
    """redis-server on a free port plus one worker per scan-chain queue, all stopped by the caller."""
    from soniquebay_assets import queues

    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("soniquebay bench celery: redis-server not found; install it or pass --broker redis://...")
    port = _free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    procs = [subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--daemonize", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    env = {**os.environ, "SONIQUEBAY_BROKER_URL": broker, "SONIQUEBAY_RESULT_BACKEND": broker}
    wanted = [queues.WORKER_SCAN, queues.WORKER_EXTRACT, queues.WORKER_INSERT_BULK]
    for name in wanted:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "soniquebay_assets.cli.main", "worker", "--queues", name, "--concurrency", "1",
             "--name", name, "--data-dir", str(work / "data-celery"), "--loglevel", "WARNING"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    _wait_for_consumers(broker, wanted, procs)
    return broker, procs


def _wait_for_consumers(broker: str, wanted: list[str], procs: list[subprocess.Popen], timeout_s: float = 120) -> None:
    from soniquebay_assets.dagster_defs.celery_config import make_celery_app
    from soniquebay_assets.dagster_defs.executor import NoQueueConsumerError, live_consumers

    app = make_celery_app(broker, broker)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit("soniquebay bench celery: a worker or redis-server exited during start-up")
        try:
            if all(q in live_consumers(app, timeout_s=1.0) for q in wanted):
                return
        except NoQueueConsumerError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"soniquebay bench celery: workers on {wanted} not ready after {timeout_s:.0f}s")


def stop_process_group(proc: subprocess.Popen, timeout_s: float = 15) -> None:
    """Stop a process group we started (each worker runs in its own session): TERM, then KILL."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout_s)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
