"""Deferred schedules and sensors, evaluated with Dagster's build_*_context on a real catalog file."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    RunRequest,
    SkipReason,
    build_run_status_sensor_context,
    build_schedule_context,
    materialize,
)

from soniquebay_assets.catalog import deferred
from soniquebay_assets.catalog.db import open_catalog
from soniquebay_assets.dagster_defs import deferred_sensors as ds
from soniquebay_assets.dagster_defs import schedules
from soniquebay_assets.dagster_defs.internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from soniquebay_assets.dagster_defs.resources import CatalogResource
from soniquebay_assets.stages import kind_owner

pytestmark = pytest.mark.both_backends


@pytest.fixture()
def catalog(data_dir: Path):
    resource = CatalogResource(data_dir_path=str(data_dir))
    conn = open_catalog(resource.data_dir.catalog_url)
    yield resource, conn
    conn.close()


def _context(resource, when: float | None = None, instance=None):
    moment = datetime.fromtimestamp(when or time.time(), tz=UTC)
    return build_schedule_context(instance=instance, scheduled_execution_time=moment, resources={"catalog": resource})


def _kind_schedule(kind: str):
    jobs = ds.build_kind_jobs(group for groups in ds.KIND_GROUPS.values() for group in groups)
    return ds.build_kind_schedule(kind, jobs[kind])


def test_jobs_only_for_kinds_whose_assets_exist():
    assert set(ds.build_kind_jobs(["metadata", "online"])) == {"enrichment"}
    assert set(ds.build_kind_jobs(["online"])) == set()  # the kind's owning stage (enrichment) is absent
    assert set(ds.build_kind_jobs(["metadata", "cover", "vector"])) == {"enrichment", "covers", "vectors"}
    jobs, scheds, sensors = ds.deferred_definitions([])
    assert (jobs, scheds, sensors) == ([], [], [])


def test_definitions_wire_schedules_sensors_and_executor():
    from soniquebay_assets.dagster_defs.definitions import defs

    repo = defs.get_repository_def()
    names = {s.name for s in repo.schedule_defs}
    assert {"deferred_retry_schedule", "deferred_maintenance_schedule"} <= names
    groups = {repo.asset_graph.get(key).group_name for key in repo.asset_graph.get_all_asset_keys()}
    for kind in ds.KIND_GROUPS:
        present = kind_owner(kind).group in groups
        assert (f"deferred_{kind}_schedule" in names) == present
    crons = {s.name: s.cron_schedule for s in repo.schedule_defs}
    assert crons.get("deferred_enrichment_schedule", "*/2 * * * *") == "*/2 * * * *"
    assert crons["deferred_retry_schedule"] == "*/15 * * * *"
    assert repo.get_job("scan_job").executor_def.name == "soniquebay_executor"


def test_kind_schedule_requests_one_bounded_run_for_due_shards_only(catalog):
    resource, conn = catalog
    now = time.time()
    deferred.enqueue(conn, "enrichment", "track", [(i, f"{i:02x}") for i in range(1, 41)], now=now - 60)
    deferred.enqueue(conn, "enrichment", "track", [(200, "fe")], delay_s=3600, now=now)  # not due
    deferred.enqueue(conn, "covers", "album", [(1, "01")], now=now - 60)  # another kind
    [request] = _kind_schedule("enrichment")(_context(resource, now))  # 01..10: one range of neighbours
    assert isinstance(request, RunRequest)
    shards = request.tags["soniquebay/deferred_shards"].split(",")
    assert len(shards) == ds.MAX_SHARDS_PER_TICK and "fe" not in shards
    assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == min(shards)
    assert request.tags[ASSET_PARTITION_RANGE_END_TAG] == max(shards)
    claim = request.tags[ds.CLAIM_TAG]
    assert request.run_key == claim
    claimed = conn.execute("SELECT shard FROM deferred_work WHERE claimed_by = ? AND state = 'in_progress'",
                           (claim,)).fetchall()
    assert sorted(r[0] for r in claimed) == sorted(shards)
    assert int(request.tags["soniquebay/deferred_items"]) == len(claimed)
    # the next tick takes the next shards, never the claimed ones
    [second] = _kind_schedule("enrichment")(_context(resource, now))
    assert not set(second.tags["soniquebay/deferred_shards"].split(",")) & set(shards)
    [third] = _kind_schedule("enrichment")(_context(resource, now))
    assert isinstance(third, RunRequest)  # 40 shards: 16 + 16 + 8
    assert isinstance(_kind_schedule("enrichment")(_context(resource, now)), SkipReason)
    assert deferred.metrics(conn)["covers"]["pending"] == 1


def test_kind_schedule_runs_cover_only_shards_with_work(catalog):
    """Scattered due shards become one run per range of neighbours: no run spans a shard without work."""
    resource, conn = catalog
    now = time.time()
    due = ["03", "04", "05", "20", "41", "42", "7e", "7f"]
    deferred.enqueue(conn, "enrichment", "track", [(i, s) for i, s in enumerate(due, start=1)], now=now - 60)
    requests = _kind_schedule("enrichment")(_context(resource, now))
    covered = [(r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) for r in requests]
    assert len(covered) == ds.MAX_RUNS_PER_TICK
    assert covered == [("03", "05"), ("20", "20"), ("41", "42"), ("7e", "7f")]
    assert len({r.tags[ds.CLAIM_TAG] for r in requests}) == len(requests)  # each run settles its own items
    for r in requests:
        claimed = {row[0] for row in conn.execute(
            "SELECT shard FROM deferred_work WHERE claimed_by = ?", (r.tags[ds.CLAIM_TAG],))}
        assert claimed == set(r.tags["soniquebay/deferred_shards"].split(","))
    assert isinstance(_kind_schedule("enrichment")(_context(resource, now)), SkipReason)


def test_new_work_is_claimed_before_a_low_priority_backlog_elsewhere(catalog):
    """The tick's item budget goes to the most urgent range first: one new file in a far shard is not starved by
    re-measures queued at low priority in the shards before it."""
    resource, conn = catalog
    now = time.time()
    backlog = [(i, f"{1 + i % 4:02x}") for i in range(1, 41)]  # shards 01..04, 10 items each
    deferred.enqueue(conn, "enrichment", "track", backlog, priority="low", now=now - 600)
    deferred.enqueue(conn, "enrichment", "track", [(100, "70")], now=now - 60)  # younger, but normal priority
    requests = ds.request_for_kind(conn, "enrichment", now=now, max_items=5)
    claimed = {r.tags["soniquebay/deferred_shards"]: int(r.tags["soniquebay/deferred_items"]) for r in requests}
    assert claimed == {"01,02,03,04": 4, "70": 1}
    assert [r.tags[ds.CLAIM_TAG][-2:] for r in requests] == ["-0", "-1"]  # numbered and listed in shard order
    [item] = [i for i in deferred.claimed_entities(conn, requests[1].tags[ds.CLAIM_TAG], "enrichment")]
    assert item == ("track", 100)


def test_kind_schedule_skips_without_due_work(catalog):
    resource, conn = catalog
    result = _kind_schedule("covers")(_context(resource))
    assert isinstance(result, SkipReason) and "[WORKER_DEFERRED_COVERS]" in result.skip_message
    deferred.enqueue(conn, "covers", "album", [(5, "05")], delay_s=3600)
    assert isinstance(_kind_schedule("covers")(_context(resource)), SkipReason)


def _run_with_tags(instance: DagsterInstance, tags: dict):
    from soniquebay_assets.dagster_defs.definitions import defs

    job = defs.get_repository_def().get_job("deferred_retry_job")
    return instance.create_run_for_job(job_def=job, tags=tags)


def test_settle_sensors_mark_done_or_back_off(catalog):
    resource, conn = catalog
    deferred.enqueue(conn, "enrichment", "track", [(1, "00"), (2, "00"), (3, "01")], now=time.time() - 10)
    [ok] = ds.request_for_kind(conn, "enrichment", max_shards=1)
    [bad] = ds.request_for_kind(conn, "enrichment", max_shards=1)
    jobs = list(ds.build_kind_jobs(["metadata"]).values())
    done_sensor, failed_sensor, _canceled = ds.build_settle_sensors(jobs)
    with DagsterInstance.ephemeral() as instance:
        run_ok = _run_with_tags(instance, ok.tags)
        event = DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name=run_ok.job_name, message="ok")
        ctx = build_run_status_sensor_context("deferred_done_sensor", event, instance, run_ok,
                                              resources={"catalog": resource})
        done_sensor(ctx)
        run_bad = _run_with_tags(instance, bad.tags)
        event = DagsterEvent(DagsterEventType.RUN_FAILURE.value, job_name=run_bad.job_name, message="boom: HTTP 500")
        ctx = build_run_status_sensor_context("deferred_failed_sensor", event, instance, run_bad,
                                              resources={"catalog": resource})
        failed_sensor(ctx)
    states = dict(conn.execute("SELECT entity_id, state FROM deferred_work").fetchall())
    assert states == {1: "done", 2: "done", 3: "failed"}
    error = conn.execute("SELECT last_error FROM deferred_work WHERE entity_id = 3").fetchone()[0]
    assert "boom: HTTP 500" in error
    assert ds.settle_claim(conn, {}, success=True) == {}


def test_one_settle_call_settles_every_run_that_ended_the_same_way(catalog):
    """Runs end one per shard range: the tick that sees one of them settles all, not one run per tick."""
    from dagster import DagsterRunStatus

    resource, conn = catalog
    deferred.enqueue(conn, "vectors", "track", [(n, f"{n:02x}") for n in range(1, 7)], now=time.time() - 10)
    requests = [ds.request_for_kind(conn, "vectors", max_shards=1)[0] for _ in range(6)]
    jobs = list(ds.build_kind_jobs(["vector"]).values())
    done_sensor, failed_sensor, _canceled = ds.build_settle_sensors(jobs)
    with DagsterInstance.ephemeral() as instance:
        runs = [_run_with_tags(instance, request.tags) for request in requests]
        for run in runs[:3]:
            instance.handle_run_event(run.run_id, DagsterEvent(DagsterEventType.RUN_SUCCESS.value,
                                                               job_name=run.job_name))
        for run in runs[3:5]:
            instance.report_run_failed(run, message="boom: disk full")
        assert [instance.get_run_by_id(r.run_id).status for r in runs[2:4]] == [DagsterRunStatus.SUCCESS,
                                                                                  DagsterRunStatus.FAILURE]
        first_done = instance.get_run_by_id(runs[0].run_id)
        event = DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name=first_done.job_name, message="ok")
        assert done_sensor(build_run_status_sensor_context(
            "deferred_done_sensor", event, instance, first_done, resources={"catalog": resource})) is None
        first_failed = instance.get_run_by_id(runs[3].run_id)
        event = DagsterEvent(DagsterEventType.RUN_FAILURE.value, job_name=first_failed.job_name, message="boom")
        failed_sensor(build_run_status_sensor_context(
            "deferred_failed_sensor", event, instance, first_failed, resources={"catalog": resource}))
    states = dict(conn.execute("SELECT entity_id, state FROM deferred_work").fetchall())
    assert states == {1: "done", 2: "done", 3: "done", 4: "failed", 5: "failed", 6: "in_progress"}
    errors = [row[0] for row in conn.execute("SELECT last_error FROM deferred_work WHERE state = 'failed'")]
    assert all("failed" in e for e in errors) and any("disk full" in e for e in errors)


def test_retry_schedule_and_job_requeue_due_failures(catalog):
    resource, conn = catalog
    assert isinstance(schedules.deferred_retry_schedule(_context(resource)), SkipReason)
    deferred.enqueue(conn, "vectors", "track", [(1, "00")], now=time.time() - 7200)
    [item] = deferred.claim(conn, "vectors", "run-x", now=time.time() - 7200)
    deferred.fail(conn, [item.work_id], "model missing", now=time.time() - 7200)
    request = schedules.deferred_retry_schedule(_context(resource))
    assert isinstance(request, RunRequest) and request.tags["soniquebay/deferred_due_failed"] == "1"
    result = schedules.deferred_retry_job.execute_in_process(resources={"catalog": resource})
    assert result.success and result.output_for_node("retry_deferred_work")["retried"] == 1
    assert conn.execute("SELECT state FROM deferred_work").fetchone()[0] == "pending"


def test_maintenance_asset_cleans_checks_and_reports(catalog):
    from soniquebay_assets.dagster_defs.assets.deferred import deferred_maintenance

    resource, conn = catalog
    old = time.time() - 40 * 86400
    deferred.enqueue(conn, "covers", "album", [(77, "00")], now=old)  # album 77 does not exist: orphan
    [item] = deferred.claim(conn, "covers", "gone-run", now=old)  # stale claim from a vanished run
    result = materialize([deferred_maintenance], resources={"catalog": resource})
    assert result.success
    meta = result.asset_materializations_for_node("deferred_maintenance")[0].metadata
    assert meta["integrity_check"].value == "ok"
    assert meta["reclaimed"].value == {"reclaimed": 1, "dead": 0}
    assert meta["deferred_orphans_deleted"].value == 1
    assert "| covers |" in meta["deferred_queue"].value
    assert "| worker_scan | file_inventory |" in meta["queue_health"].value
    assert conn.execute("SELECT COUNT(*) FROM deferred_work").fetchone()[0] == 0
    assert item.work_id


def test_vacuum_only_when_enough_pages_are_free(catalog):
    from soniquebay_assets.catalog.maintenance import vacuum_if_worth_it

    _resource, conn = catalog
    assert vacuum_if_worth_it(conn).startswith("not needed")
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        return  # autovacuum's job there: the upkeep never rewrites a server database
    deferred.enqueue(conn, "vectors", "track", [(i, "00") for i in range(20_000)])
    conn.execute("DELETE FROM deferred_work")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert vacuum_if_worth_it(conn).startswith("done")
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0


def test_schedule_run_and_settle_end_to_end_for_covers(catalog, tmp_path, make_audio):
    """Catalog insert enqueues covers; the schedule claims them; the requested run succeeds; the sensor logic
    marks exactly the claimed items done."""
    from soniquebay_assets.dagster_defs.definitions import all_assets
    from soniquebay_assets.pipeline.scan import catalog_shards, extract_shards, inventory_shards, plan_scan

    resource, conn = catalog
    lib = tmp_path / "lib"
    for album in ("North", "South"):
        make_audio(lib / album / album / "01.flac", seconds=0.3, title="One", artist=album, album=album,
                   tracknumber=1)
    plan = plan_scan(conn, [lib])
    inventory_shards(conn, plan.walk, plan.affected)
    extract_shards(conn, plan.affected, workers=1)
    catalog_shards(conn, plan.affected)
    assert deferred.metrics(conn)["covers"]["pending"] == 2
    requests = _kind_schedule("covers")(_context(resource))
    assert requests and all(isinstance(r, RunRequest) for r in requests)
    covers = [a for a in all_assets() if set(a.group_names_by_key.values()) & set(ds.KIND_GROUPS["covers"])]
    settled = 0
    for request in requests:
        run_tags = {k: v for k, v in request.tags.items() if k.startswith("dagster/")}
        result = materialize(covers, resources={"catalog": resource}, tags=run_tags, raise_on_error=False)
        assert result.success
        settled += ds.settle_claim(conn, request.tags, success=result.success)["done"]
    assert settled == 2
    m = deferred.metrics(conn)["covers"]
    assert (m["done"], m["pending"], m["in_progress"]) == (2, 0, 0)


def test_claims_of_ended_runs_are_settled_not_held(catalog):
    """A run that ended without its settle sensor (daemon killed) or a claim whose run never started does not
    hold its items until the 2 h stale-claim limit."""
    from dagster import DagsterRunStatus

    resource, conn = catalog
    now = time.time()
    deferred.enqueue(conn, "enrichment", "track", [(1, "00"), (2, "01"), (3, "02"), (4, "03")], now=now - 3600)
    for claim, shard in (("c-ok", "00"), ("c-failed", "01"), ("c-orphan", "02"), ("c-running", "03")):
        deferred.claim(conn, "enrichment", claim, shards=[shard], now=now - 3000)
    job = __import__("soniquebay_assets.dagster_defs.definitions", fromlist=["defs"]).defs.get_repository_def(
    ).get_job("deferred_retry_job")
    with DagsterInstance.ephemeral() as instance:
        for claim, status in (("c-ok", DagsterRunStatus.SUCCESS), ("c-failed", DagsterRunStatus.FAILURE),
                              ("c-running", DagsterRunStatus.STARTED)):
            instance.create_run_for_job(job_def=job, tags={ds.CLAIM_TAG: claim}, status=status)
        counts = ds.release_ended_claims(conn, instance, now=now)
    assert counts == {"done": 1, "released": 2, "dead": 0}
    states = dict(conn.execute("SELECT entity_id, state FROM deferred_work").fetchall())
    assert states == {1: "done", 2: "pending", 3: "pending", 4: "in_progress"}


def test_run_whose_process_died_releases_its_items_at_once(catalog):
    resource, conn = catalog
    deferred.enqueue(conn, "vectors", "track", [(1, "00")], now=time.time() - 10)
    [request] = ds.request_for_kind(conn, "vectors")
    message = "Detected run worker status WorkerStatus.FAILED: run worker process 4242 on host is gone"
    assert ds.worker_died(message) and not ds.worker_died("boom: HTTP 500")
    assert ds.settle_claim(conn, request.tags, success=False, error=message, worker_died=True) == {
        "released": 1, "dead": 0}
    assert tuple(conn.execute("SELECT state, attempts FROM deferred_work").fetchone()) == ("pending", 1)
