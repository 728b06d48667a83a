"""The Celery executor with a real Redis and real worker processes: routing, SIGKILL redelivery, no-consumer guard.

Skips when redis-server is not installed, except under CI=true where that is a failure. Every wait is bounded.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from soniquebay_assets import queues
from soniquebay_assets.cli.bench_celery import stop_process_group
from soniquebay_assets.queues import SCAN_CHAIN_GROUPS

pytestmark = [pytest.mark.celery, pytest.mark.slow, pytest.mark.timeout(420)]

# One worker per scan-chain queue so a step's worker name proves its queue; one worker for the other four.
WORKERS = {
    "scan": [queues.WORKER_SCAN],
    "extract": [queues.WORKER_EXTRACT],
    "insert": [queues.WORKER_INSERT_BULK],
}
# every other queue, so a stage added to the registry is consumed here too (a worker takes at most 4 queues)
_REST = [q for q in queues.ALL_QUEUES if q not in (queues.WORKER_SCAN, queues.WORKER_EXTRACT, queues.WORKER_INSERT_BULK)]
WORKERS.update({f"rest{i // 4}": _REST[i:i + 4] for i in range(0, len(_REST), 4)})
WORKER_FOR_STEP = {"file_inventory": "scan", "raw_metadata": "extract", "catalog_entities": "insert"}
SCAN_GROUPS = list(SCAN_CHAIN_GROUPS)
FAST_EXECUTOR = {"consumer_check_timeout_s": 1.5, "no_consumer_grace_s": 20.0}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, timeout_s: float, what: str, interval_s: float = 0.3):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


class Cluster:
    """Redis + worker processes sharing one data dir and Dagster home."""

    def __init__(self, port: int, root: Path) -> None:
        self.port, self.root = port, root
        self.data = root / "data"
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def broker(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def env(self, db: int = 0) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"SONIQUEBAY_BROKER_URL": self.broker(db), "SONIQUEBAY_DATA_DIR": str(self.data),
                    "SONIQUEBAY_RESULT_BACKEND": self.broker(db), "PYTHONUNBUFFERED": "1"})
        env.pop("SONIQUEBAY_EXECUTOR", None)
        return env

    def start_worker(self, name: str, names: list[str], db: int = 0, env_extra: dict | None = None) -> None:
        log = self.root / f"worker-{name}-{db}.log"
        self.logs[f"{name}-{db}"] = log
        command = [sys.executable, "-m", "soniquebay_assets.cli.main", "worker", "--queues", ",".join(names),
                   "--concurrency", "1", "--name", name, "--data-dir", str(self.data), "--loglevel", "INFO"]
        with open(log, "wb") as out:
            self.procs[f"{name}-{db}"] = subprocess.Popen(command, env={**self.env(db), **(env_extra or {})}, stdout=out,
                                                          stderr=subprocess.STDOUT, start_new_session=True)

    def consumers(self, db: int = 0) -> dict[str, list[str]]:
        from soniquebay_assets.dagster_defs.celery_config import make_celery_app
        from soniquebay_assets.dagster_defs.executor import live_consumers

        return live_consumers(make_celery_app(self.broker(db), self.broker(db)), timeout_s=1.0)

    def wait_for_queues(self, wanted: list[str], db: int = 0, timeout_s: float = 120) -> None:
        def ready():
            for key, proc in self.procs.items():  # this broker's workers (another test may have stopped its own)
                if key.endswith(f"-{db}") and proc.poll() is not None:
                    raise AssertionError(f"worker {key} exited early:\n{self.logs[key].read_text()[-3000:]}")
            found = self.consumers(db)
            return all(q in found for q in wanted)

        _wait(ready, timeout_s, f"workers on {', '.join(wanted)}", interval_s=1.0)

    def stop(self) -> None:
        for proc in self.procs.values():  # ask every worker first so their warm shutdowns overlap
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            stop_process_group(proc)


@pytest.fixture(scope="module")
def cluster(redis_server, tmp_path_factory):
    from soniquebay_assets.cli.common import use_dagster_home
    from soniquebay_assets.settings import DataDir

    root = tmp_path_factory.mktemp("celery")
    c = Cluster(redis_server, root)
    saved = {k: os.environ.get(k) for k in ("DAGSTER_HOME", "SONIQUEBAY_DATA_DIR", "SONIQUEBAY_BROKER_URL",
                                            "SONIQUEBAY_RESULT_BACKEND", "SONIQUEBAY_EXECUTOR")}
    use_dagster_home(DataDir(c.data).ensure())  # same dagster.yaml the workers' command writes
    os.environ.update({"SONIQUEBAY_BROKER_URL": c.broker(), "SONIQUEBAY_RESULT_BACKEND": c.broker()})
    try:
        for name, names in WORKERS.items():
            c.start_worker(name, names)
        c.wait_for_queues(list(queues.ALL_QUEUES))
        yield c
    finally:
        c.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _library(root: Path, make_audio, albums: int = 3, tracks: int = 2) -> Path:
    for a in range(albums):
        for t in range(1, tracks + 1):
            make_audio(root / f"Artist {a}" / f"Album {a}" / f"{t:02d}.flac", seconds=0.3, title=f"Song {a}.{t}",
                       artist=f"Artist {a}", album=f"Album {a}", tracknumber=t)
    return root


def _plan(data_root: Path, lib: Path):
    from soniquebay_assets.catalog.db import open_catalog
    from soniquebay_assets.pipeline.scan import plan_scan, save_snapshot
    from soniquebay_assets.settings import DataDir

    data = DataDir(data_root).ensure()
    conn = open_catalog(data.catalog_url)
    try:
        plan = plan_scan(conn, [lib])
        snapshot = save_snapshot(plan.walk, conn)
    finally:
        conn.close()
    return plan.affected, snapshot


def _catalog_rows(data_root: Path) -> tuple[list[tuple], dict[str, int]]:
    from soniquebay_assets.catalog import deferred
    from soniquebay_assets.catalog.db import connect

    conn = connect(data_root / "catalog.db")
    try:
        rows = [tuple(r) for r in conn.execute(
            "SELECT t.title, t.artist_display, a.title FROM tracks t JOIN albums a USING (album_id) ORDER BY t.title")]
        pending = {kind: m["pending"] for kind, m in deferred.metrics(conn).items() if m["pending"]}
    finally:
        conn.close()
    return rows, pending


def _expected_rows(albums: int = 3, tracks: int = 2) -> list[tuple]:
    return sorted((f"Song {a}.{t}", f"Artist {a}", f"Album {a}") for a in range(albums) for t in range(1, tracks + 1))


def _step_workers(run_id: str) -> dict[str, list[str]]:
    """step key -> hostnames of the Celery workers that executed it (from the run's engine events)."""
    from dagster import DagsterInstance

    found: dict[str, list[str]] = {}
    with DagsterInstance.get() as instance:
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is None or not event.is_engine_event or not record.step_key:
                continue
            metadata = event.engine_event_data.metadata or {}
            worker = metadata.get("Celery worker")
            if worker is not None:
                found.setdefault(record.step_key, []).append(getattr(worker, "value", worker))
    return found


def test_scan_runs_each_step_on_a_worker_of_its_queue(cluster, tmp_path, make_audio):
    from soniquebay_assets.dagster_defs.scan_runs import materialize_through_celery
    from soniquebay_assets.pipeline.scan import PARALLEL_THRESHOLD

    # more files than the extraction's process-pool threshold: pools must start inside Celery's pool children
    albums, tracks = PARALLEL_THRESHOLD // 5 + 1, 5
    lib = _library(tmp_path / "lib", make_audio, albums=albums, tracks=tracks)
    data_root = tmp_path / "data"
    shards, snapshot = _plan(data_root, lib)
    groups = [*SCAN_GROUPS, "cover"]  # the cover step proves the fourth worker's queue routing too
    result = materialize_through_celery(groups, shards, [lib], data_root, snapshot, executor_config=FAST_EXECUTOR)
    assert result["success"], result["failure"]
    workers = _step_workers(result["run_id"])
    covers = next(name for name, names in WORKERS.items() if queues.WORKER_COVER in names)
    expected = {**WORKER_FOR_STEP, "album_covers": covers, "artist_images": covers}
    # `soniquebay worker` runs one Celery process per prefetch value, named <name>-p<prefetch>
    assert {step: [re.sub(r"-p\d+$", "", h.split("@")[0]) for h in hosts] for step, hosts in workers.items()} == {
        step: [worker] for step, worker in expected.items()}
    rows, pending = _catalog_rows(data_root)
    assert rows == _expected_rows(albums, tracks)
    assert pending == {"enrichment": albums * tracks, "vectors": albums * tracks, "covers": albums}
    assert result["metadata"]["catalog_entities"]["tracks_written"] == albums * tracks
    assert result["metadata"]["raw_metadata"]["errored"] == 0


def test_sigkilled_worker_mid_step_is_redelivered_and_the_run_completes(cluster, tmp_path, make_audio):
    from soniquebay_assets.dagster_defs.scan_runs import materialize_through_celery
    from soniquebay_assets_tests.celery_test_jobs import reconstructable_pausing_job

    lib = _library(tmp_path / "lib", make_audio, albums=2, tracks=3)
    data_root = tmp_path / "data"
    pause_dir = tmp_path / "pause"
    pause_dir.mkdir()
    shards, snapshot = _plan(data_root, lib)
    marker = pause_dir / "catalog_entities.pid"
    killed: list[int] = []

    def kill_when_paused() -> None:
        try:
            text = _wait(lambda: marker.exists() and marker.read_text().strip(), 150, "the insert step to pause")
        except AssertionError:
            return
        pid = int(text)
        os.kill(pid, signal.SIGKILL)  # the pool process running the step, mid-step
        killed.append(pid)

    killer = threading.Thread(target=kill_when_paused, daemon=True)
    killer.start()
    result = materialize_through_celery(
        SCAN_GROUPS, shards, [lib], data_root, snapshot, executor_config=FAST_EXECUTOR,
        job=reconstructable_pausing_job(SCAN_GROUPS),
        extra_resource_config={"catalog": {"pause_step": "catalog_entities", "pause_dir": str(pause_dir)}},
    )
    killer.join(timeout=5)
    assert killed, "the insert step never reached the pause point"
    assert result["success"], result["failure"]
    workers = _step_workers(result["run_id"])
    # the killed delivery and the redelivery both ran on the insert queue's worker
    assert [h.split("@")[0] for h in workers["catalog_entities"]] == ["insert", "insert"]
    rows, pending = _catalog_rows(data_root)
    assert rows == _expected_rows(albums=2, tracks=3)
    assert pending == {"enrichment": 6, "vectors": 6, "covers": 2}
    cluster.wait_for_queues([queues.WORKER_INSERT_BULK], timeout_s=60)  # the worker survived its child's death


def test_queue_without_consumer_fails_fast_naming_it(cluster, tmp_path, make_audio):
    from soniquebay_assets.dagster_defs.scan_runs import materialize_through_celery

    # Redis db 1: only a worker_scan consumer listens there, so extract and insert have nobody.
    cluster.start_worker("lonely", [queues.WORKER_SCAN], db=1)
    cluster.wait_for_queues([queues.WORKER_SCAN], db=1)
    lib = _library(tmp_path / "lib", make_audio, albums=1, tracks=1)
    data_root = tmp_path / "data"
    shards, snapshot = _plan(data_root, lib)
    result = materialize_through_celery(
        SCAN_GROUPS, shards, [lib], data_root, snapshot,
        executor_config={**FAST_EXECUTOR, "broker": cluster.broker(1), "backend": cluster.broker(1)})
    assert not result["success"]
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        text = "\n".join(r.message or "" for r in instance.all_logs(result["run_id"]))
        text += "\n".join(str(r.dagster_event.event_specific_data) for r in instance.all_logs(result["run_id"])
                          if r.dagster_event is not None)
    assert "no live Celery worker consumes queue 'worker_extract'" in text
    assert "worker_insert_bulk" in text
    rows, _ = _catalog_rows(data_root)
    assert rows == []  # nothing ran: the check happens before the first step is sent


def test_queue_depth_counts_messages_on_every_priority_list(redis_server):
    import redis

    from soniquebay_assets.dagster_defs import monitoring
    from soniquebay_assets.dagster_defs.celery_config import make_celery_app

    url = f"redis://127.0.0.1:{redis_server}/3"  # no worker listens on db 3: messages stay queued
    redis.Redis.from_url(url).flushdb()
    app = make_celery_app(url, url)
    for priority in (0, 5, 9):  # dagster-celery sends priority 5 by default; kombu splits lists by priority
        app.send_task("execute_plan", kwargs={}, queue=queues.WORKER_COVER, priority=priority)
    depths, problem = monitoring.queue_depths(url)
    assert problem == ""
    assert depths[queues.WORKER_COVER] == 3
    assert depths[queues.WORKER_SCAN] == 0


def test_ui_scan_job_from_the_definitions_runs_through_celery_when_selected(cluster, tmp_path, make_audio):
    """What the UI launches: the Definitions' own scan_job, with the executor config selecting celery."""
    from dagster import DagsterInstance, execute_job
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from soniquebay_assets.dagster_defs.partitions import range_tags
    from soniquebay_assets.dagster_defs.scan_runs import celery_run_config

    lib = _library(tmp_path / "lib", make_audio, albums=2, tracks=1)
    data_root = tmp_path / "data"
    shards, snapshot = _plan(data_root, lib)
    repo = ReconstructableRepository.for_module("soniquebay_assets.dagster_defs.definitions", "defs")
    with DagsterInstance.get() as instance:
        with execute_job(repo.get_reconstructable_job("scan_job"), instance=instance,
                         run_config=celery_run_config([lib], data_root, snapshot, SCAN_GROUPS,
                                                      executor_config=FAST_EXECUTOR),
                         tags=range_tags(shards)) as result:
            assert result.success
            run_id = result.run_id
    workers = _step_workers(run_id)
    assert {step: [h.split("@")[0] for h in hosts] for step, hosts in workers.items()} == {
        step: [worker] for step, worker in WORKER_FOR_STEP.items()}
    rows, _ = _catalog_rows(data_root)
    assert rows == _expected_rows(albums=2, tracks=1)


def test_concurrent_runs_writing_one_catalog_never_hit_database_is_locked(cluster, tmp_path, make_audio):
    """Two runs over the same library at once: their steps write the catalog from several workers together."""
    lib = _library(tmp_path / "lib", make_audio, albums=8, tracks=5)
    data_root = tmp_path / "data"
    shards, snapshot = _plan(data_root, lib)
    script = tmp_path / "one_run.py"
    script.write_text(
        "import json, sys\nfrom pathlib import Path\n"
        "from soniquebay_assets.dagster_defs.scan_runs import materialize_through_celery\n"
        f"r = materialize_through_celery({SCAN_GROUPS!r}, {shards!r}, [Path({str(lib)!r})], Path({str(data_root)!r}),"
        f" Path({str(snapshot)!r}), executor_config={FAST_EXECUTOR!r})\n"
        "print(json.dumps({'success': r['success'], 'failure': r['failure']}))\n", encoding="utf-8")
    env = {**os.environ}
    procs = [subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True) for _ in range(2)]
    outcomes = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err[-3000:]
            outcomes.append(__import__("json").loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            stop_process_group(proc)
    assert all(o["success"] for o in outcomes), outcomes
    assert not any("locked" in (o["failure"] or "") for o in outcomes)
    rows, pending = _catalog_rows(data_root)
    assert rows == _expected_rows(albums=8, tracks=5)
    assert pending == {"enrichment": 40, "vectors": 40, "covers": 8}
    from soniquebay_assets.catalog.db import connect

    conn = connect(data_root / "catalog.db")
    try:
        assert conn.execute("SELECT COUNT(*) FROM scan_errors").fetchone()[0] == 0
    finally:
        conn.close()


def test_queue_losing_its_workers_mid_run_fails_the_run_naming_it(cluster, tmp_path, make_audio):
    from soniquebay_assets.dagster_defs.scan_runs import materialize_through_celery
    from soniquebay_assets_tests.celery_test_jobs import reconstructable_pausing_job

    db = 2
    for name in ("scan", "extract", "insert"):
        cluster.start_worker(f"v{name}", [WORKERS[name][0]], db=db)
    cluster.wait_for_queues([queues.WORKER_SCAN, queues.WORKER_EXTRACT, queues.WORKER_INSERT_BULK], db=db)
    lib = _library(tmp_path / "lib", make_audio, albums=1, tracks=2)
    data_root = tmp_path / "data"
    pause_dir = tmp_path / "pause"
    pause_dir.mkdir()
    shards, snapshot = _plan(data_root, lib)

    def stop_insert_worker_while_inventory_pauses() -> None:
        try:
            _wait(lambda: (pause_dir / "file_inventory.pid").exists(), 150, "the inventory step to pause")
        except AssertionError:
            return
        stop_process_group(cluster.procs[f"vinsert-{db}"])

    stopper = threading.Thread(target=stop_insert_worker_while_inventory_pauses, daemon=True)
    stopper.start()
    result = materialize_through_celery(
        SCAN_GROUPS, shards, [lib], data_root, snapshot,
        executor_config={"consumer_check_timeout_s": 1.5, "no_consumer_grace_s": 3.0,
                         "broker": cluster.broker(db), "backend": cluster.broker(db)},
        job=reconstructable_pausing_job(SCAN_GROUPS),
        extra_resource_config={"catalog": {"pause_step": "file_inventory", "pause_dir": str(pause_dir),
                                           "pause_seconds": 8.0}},
    )
    stopper.join(timeout=5)
    assert cluster.procs[f"vinsert-{db}"].poll() is not None
    assert not result["success"]
    assert "worker_insert_bulk" in (result["failure"] or "") or "worker_insert_bulk" in _run_text(result["run_id"])
    assert "no live Celery worker" in _run_text(result["run_id"])
    workers = _step_workers(result["run_id"])
    assert "catalog_entities" not in workers  # it never ran anywhere
    assert [h.split("@")[0] for h in workers["raw_metadata"]] == ["vextract"]


def test_a_step_longer_than_the_visibility_timeout_runs_once_while_its_worker_lives(cluster, tmp_path, make_audio):
    """Workers renew the deliveries they hold: Redis hands a step to another worker only when its worker stops
    renewing it (gone, cut off), not because the step outlasts the visibility timeout."""
    from soniquebay_assets.dagster_defs.scan_runs import materialize_through_celery
    from soniquebay_assets_tests.celery_test_jobs import reconstructable_pausing_job

    db, short = 3, {"SONIQUEBAY_CELERY_VISIBILITY_TIMEOUT": "4"}
    chain = [queues.WORKER_SCAN, queues.WORKER_EXTRACT, queues.WORKER_INSERT_BULK]
    for name in ("first", "second"):  # a second worker that would take a step handed out again
        cluster.start_worker(name, chain, db=db, env_extra=short)
    cluster.wait_for_queues(chain, db=db)
    lib = _library(tmp_path / "lib", make_audio, albums=1, tracks=2)
    data_root = tmp_path / "data"
    pause_dir = tmp_path / "pause"
    pause_dir.mkdir()
    shards, snapshot = _plan(data_root, lib)
    result = materialize_through_celery(  # the insert step takes 25 s: six visibility timeouts, 2 restore sweeps
        SCAN_GROUPS, shards, [lib], data_root, snapshot,
        executor_config={**FAST_EXECUTOR, "broker": cluster.broker(db), "backend": cluster.broker(db)},
        job=reconstructable_pausing_job(SCAN_GROUPS),
        extra_resource_config={"catalog": {"pause_step": "catalog_entities", "pause_dir": str(pause_dir),
                                           "pause_seconds": 25.0}},
    )
    assert result["success"], result["failure"]
    assert len(_step_workers(result["run_id"])["catalog_entities"]) == 1  # delivered once, run once
    assert _catalog_rows(data_root)[0] == _expected_rows(albums=1, tracks=2)


def _run_text(run_id: str) -> str:
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        records = instance.all_logs(run_id)
    parts = [r.message or "" for r in records]
    parts += [str(r.dagster_event.event_specific_data) for r in records if r.dagster_event is not None]
    return "\n".join(parts)
