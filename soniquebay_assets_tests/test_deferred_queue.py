"""Deferred work queue on a real SQLite file: idempotent enqueue, atomic claims under a race, backoff, dead letter."""

from __future__ import annotations

import multiprocessing

import pytest

from soniquebay_assets.catalog import deferred
from soniquebay_assets.catalog.db import connect, open_catalog, transaction

pytestmark = pytest.mark.both_backends

T0 = 1_700_000_000.0


@pytest.fixture()
def catalog(catalog_target):
    conn = open_catalog(catalog_target)
    yield conn
    conn.close()


def _add(conn, n: int, kind: str = "enrichment", shard_of=lambda i: f"{i % 4:02x}", **kw) -> None:
    deferred.enqueue(conn, kind, "track", [(i, shard_of(i)) for i in range(1, n + 1)], now=kw.pop("now", T0), **kw)


def _states(conn) -> dict[str, int]:
    return dict(conn.execute("SELECT state, COUNT(*) FROM deferred_work GROUP BY state").fetchall())


def test_enqueue_is_idempotent_and_resets_finished_items(catalog):
    assert deferred.enqueue(catalog, "vectors", "track", [(1, "00"), (2, "01")], now=T0) == 2
    assert deferred.enqueue(catalog, "vectors", "track", [(1, "00"), (2, "01")], now=T0 + 5) == 0
    assert catalog.execute("SELECT COUNT(*) FROM deferred_work").fetchone()[0] == 2
    [item, _] = deferred.claim(catalog, "vectors", "w1", limit=2, now=T0 + 10)
    deferred.complete(catalog, [item.work_id], now=T0 + 11)
    # the track changed again: its finished item goes back to pending with a clean slate
    assert deferred.enqueue(catalog, "vectors", "track", [(item.entity_id, "00")], now=T0 + 20) == 1
    row = catalog.execute("SELECT state, attempts FROM deferred_work WHERE work_id = ?", (item.work_id,)).fetchone()
    assert tuple(row) == ("pending", 0)


def test_enqueue_joins_the_callers_transaction(catalog):
    with pytest.raises(RuntimeError):
        with transaction(catalog):
            deferred.enqueue(catalog, "covers", "album", [(7, "0a")], now=T0)
            raise RuntimeError("catalog batch failed")
    assert catalog.execute("SELECT COUNT(*) FROM deferred_work").fetchone()[0] == 0


def test_claim_orders_by_priority_and_not_yet_due_never_blocks(catalog):
    deferred.enqueue(catalog, "enrichment", "track", [(1, "00")], priority="high", delay_s=3600, now=T0)
    deferred.enqueue(catalog, "enrichment", "track", [(2, "00")], priority="low", now=T0)
    deferred.enqueue(catalog, "enrichment", "track", [(3, "01")], priority="normal", now=T0 + 1)
    deferred.enqueue(catalog, "enrichment", "track", [(4, "02")], priority="high", now=T0 + 2)
    claimed = deferred.claim(catalog, "enrichment", "w", limit=10, now=T0 + 10)
    # the high-priority item due in an hour is skipped; the due ones come out best priority first
    assert [i.entity_id for i in claimed] == [4, 3, 2]
    assert deferred.claim(catalog, "enrichment", "w", limit=10, now=T0 + 10) == []
    later = deferred.claim(catalog, "enrichment", "w", limit=10, now=T0 + 3601)
    assert [i.entity_id for i in later] == [1]


def test_claim_respects_limit_kind_and_shards(catalog):
    _add(catalog, 8)
    _add(catalog, 3, kind="covers")
    assert len(deferred.claim(catalog, "enrichment", "w", limit=3, now=T0)) == 3
    only = deferred.claim(catalog, "enrichment", "w", limit=10, shards=["01"], now=T0)
    assert {i.shard for i in only} == {"01"} and only
    assert deferred.claim(catalog, "enrichment", "w", shards=[], now=T0) == []
    assert _states(catalog)["in_progress"] == 3 + len(only)
    assert deferred.metrics(catalog, now=T0)["covers"]["pending"] == 3


def _claim_loop(path: str, worker: str, out) -> None:
    conn = connect(path)
    taken: list[int] = []
    while True:
        batch = deferred.claim(conn, "enrichment", worker, limit=7, now=T0 + 1)
        if not batch:
            break
        taken += [item.work_id for item in batch]
    conn.close()
    out.put((worker, taken))


def test_two_processes_racing_never_take_the_same_item(catalog_target):
    path = catalog_target
    conn = open_catalog(path)
    _add(conn, 600)
    conn.close()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_loop, args=(str(path), f"w{i}", out)) for i in range(3)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    all_taken = [wid for ids in results.values() for wid in ids]
    assert len(all_taken) == 600 and len(set(all_taken)) == 600
    conn = connect(path)
    owners = dict(conn.execute("SELECT claimed_by, COUNT(*) FROM deferred_work GROUP BY claimed_by").fetchall())
    assert owners == {w: len(ids) for w, ids in results.items() if ids}
    conn.close()


def test_failure_backs_off_exponentially_then_dead_letters(catalog):
    deferred.enqueue(catalog, "covers", "album", [(9, "0f")], max_attempts=3, now=T0)
    now = T0
    delays = []
    for attempt in range(1, 4):
        [item] = deferred.claim(catalog, "covers", "w", now=now)
        assert item.attempts == attempt
        counts = deferred.fail(catalog, [item.work_id], f"HTTP 503 try {attempt}", now=now)
        row = catalog.execute("SELECT state, not_before, last_error FROM deferred_work").fetchone()
        if attempt < 3:
            assert counts == {"failed": 1, "dead": 0} and row["state"] == "failed"
            delays.append(row["not_before"] - now)
            # not claimable while failed, even once due, until the retry job moves it back
            assert deferred.claim(catalog, "covers", "w", now=row["not_before"] + 1) == []
            now = row["not_before"]
            assert deferred.retry_failed(catalog, now=now - 1) == 0
            assert deferred.retry_failed(catalog, now=now) == 1
        else:
            assert counts == {"failed": 0, "dead": 1} and row["state"] == "dead"
            assert row["last_error"] == "HTTP 503 try 3"
    assert delays == [deferred.BACKOFF_BASE_S, 2 * deferred.BACKOFF_BASE_S]
    assert deferred.backoff_s(30) == deferred.BACKOFF_CAP_S
    m = deferred.metrics(catalog, now=now)["covers"]
    assert m["dead"] == 1 and m["errors"] == {"HTTP 503 try 3": 1}


def test_stale_claims_are_reclaimed_and_exhausted_ones_die(catalog):
    deferred.enqueue(catalog, "vectors", "track", [(1, "00")], now=T0)
    deferred.enqueue(catalog, "vectors", "track", [(2, "00")], max_attempts=1, now=T0)
    deferred.claim(catalog, "vectors", "vanished-run", limit=5, now=T0)
    assert deferred.reclaim_stale(catalog, older_than_s=600, now=T0 + 599) == {"reclaimed": 0, "dead": 0}
    assert deferred.reclaim_stale(catalog, older_than_s=600, now=T0 + 601) == {"reclaimed": 1, "dead": 1}
    [again] = deferred.claim(catalog, "vectors", "next-run", now=T0 + 602)
    assert again.entity_id == 1 and again.attempts == 2


def test_complete_and_fail_by_claimer(catalog):
    _add(catalog, 6)
    deferred.claim(catalog, "enrichment", "run-a", limit=4, now=T0)
    deferred.claim(catalog, "enrichment", "run-b", limit=4, now=T0)
    assert deferred.complete_claimed(catalog, "run-a", now=T0 + 1) == 4
    assert deferred.fail_claimed(catalog, "run-b", "run failed", now=T0 + 1) == {"failed": 2, "dead": 0}
    assert _states(catalog) == {"done": 4, "failed": 2}


def test_cleanup_orphans_and_metrics(catalog):
    _add(catalog, 4, kind="vectors")
    items = deferred.claim(catalog, "vectors", "w", limit=2, now=T0)
    deferred.complete(catalog, [i.work_id for i in items], now=T0)
    assert deferred.cleanup(catalog, done_older_than_s=100, now=T0 + 50) == {"done_deleted": 0, "dead_deleted": 0}
    assert deferred.cleanup(catalog, done_older_than_s=100, now=T0 + 101)["done_deleted"] == 2
    m = deferred.metrics(catalog, now=T0 + 200)
    assert m["vectors"]["pending"] == 2 and m["vectors"]["due"] == 2
    assert m["vectors"]["oldest_pending_age_s"] == 200.0
    assert m["enrichment"]["pending"] == 0 and m["enrichment"]["oldest_pending_age_s"] is None
    # no track rows exist in this bare catalog, so every track item is an orphan
    assert deferred.delete_orphans(catalog) == 2
    assert deferred.pending_shards(catalog, "vectors", now=T0) == []


def test_pending_shards_bounded_and_due_only(catalog):
    _add(catalog, 40, shard_of=lambda i: f"{i:02x}")
    deferred.enqueue(catalog, "enrichment", "track", [(100, "ff")], delay_s=999, now=T0)
    shards = deferred.pending_shards(catalog, "enrichment", limit=5, now=T0)
    assert len(shards) == 5 and "ff" not in shards
    assert "ff" not in deferred.pending_shards(catalog, "enrichment", limit=100, now=T0)


def test_unknown_kind_is_refused(catalog):
    with pytest.raises(ValueError, match="unknown deferred kind"):
        deferred.claim(catalog, "lyrics", "w")


def test_catalog_insert_enqueues_deferred_work_once(tmp_path, make_audio, catalog_target):
    from soniquebay_assets.pipeline.scan import catalog_shards, extract_shards, inventory_shards, plan_scan

    lib = tmp_path / "lib"
    for album in ("A", "B"):
        for n in (1, 2):
            make_audio(lib / f"Band {album}" / f"Album {album}" / f"{n:02d}.flac", seconds=0.3, title=f"Song {n}",
                       artist=f"Band {album}", album=f"Album {album}", tracknumber=n)
    conn = open_catalog(catalog_target)

    def scan() -> None:
        plan = plan_scan(conn, [lib])
        if plan.affected:
            inventory_shards(conn, plan.walk, plan.affected)
            extract_shards(conn, plan.affected, workers=1)
            catalog_shards(conn, plan.affected)

    scan()
    m = deferred.metrics(conn)
    assert (m["enrichment"]["pending"], m["vectors"]["pending"], m["covers"]["pending"]) == (4, 4, 2)
    track_shards = dict(conn.execute("SELECT track_id, shard FROM tracks").fetchall())
    for row in conn.execute("SELECT entity_id, shard FROM deferred_work WHERE entity_type = 'track'"):
        assert track_shards[row[0]] == row[1]
    scan()  # nothing changed: nothing new to do
    assert conn.execute("SELECT COUNT(*) FROM deferred_work").fetchone()[0] == 10
    conn.close()


