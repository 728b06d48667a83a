"""Vectors follow the data, not the clock: a track's vector waits for its analysis, and a text-only vector
beside a finished analysis fails validation and is rebuilt by the next vectors run, whatever shards it covers."""

from __future__ import annotations

import pytest

from soniquebay_assets.catalog import deferred
from soniquebay_assets.dagster_defs.assets.vectors import check_result
from soniquebay_assets.pipeline import vectorize as vz
from soniquebay_assets_tests import vectors_support as vs
from soniquebay_assets_tests.vectors_support import text_model  # noqa: F401  (session fixture)


@pytest.fixture()
def conn(tmp_path):
    connection = vs.new_catalog(tmp_path / "catalog.db")
    yield connection
    connection.close()


def _tracks(conn) -> dict[str, int]:
    ids = {}
    for shard, title in (("00", "First"), ("00", "Second"), ("01", "Third")):
        ids[title] = vs.add_track(conn, f"/lib/a/{title}.flac", title=title, artists=["Artist"], album="Album",
                                  genres=["jazz"], year=2001, shard=shard)
    return ids


def test_vector_work_is_not_due_while_its_analysis_is_to_do(conn):
    ids = _tracks(conn)
    entities = [(ids["First"], "00"), (ids["Second"], "00"), (ids["Third"], "01")]
    deferred.enqueue(conn, "enrichment", "track", entities, now=100.0)
    deferred.enqueue(conn, "vectors", "track", entities, now=100.0)
    assert deferred.pending_shards(conn, "vectors", now=200.0) == []
    assert deferred.claim(conn, "vectors", "early", now=200.0) == []

    analysed = deferred.claim(conn, "enrichment", "run-1", shards=["00"], now=200.0)
    assert {i.entity_id for i in analysed} == {ids["First"], ids["Second"]}
    assert deferred.claim(conn, "vectors", "early", now=210.0) == []  # still being analysed
    deferred.complete_claimed(conn, "run-1", now=220.0)
    assert deferred.pending_shards(conn, "vectors", now=230.0) == ["00"]  # shard 01 still waits for its analysis
    claimed = deferred.claim(conn, "vectors", "vec-1", now=230.0)
    assert {i.entity_id for i in claimed} == {ids["First"], ids["Second"]}

    # a failed analysis waiting for its retry keeps the vector waiting; a dead one lets it go text-only
    deferred.claim(conn, "enrichment", "run-2", now=240.0)
    deferred.fail_claimed(conn, "run-2", "decoder crashed", now=250.0)
    assert deferred.claim(conn, "vectors", "vec-2", now=260.0) == []
    conn.execute("UPDATE deferred_work SET state = 'dead' WHERE kind = 'enrichment'")
    conn.commit()
    assert [i.entity_id for i in deferred.claim(conn, "vectors", "vec-2", now=270.0)] == [ids["Third"]]


@pytest.mark.usefixtures("text_model")
def test_text_only_vector_beside_finished_analysis_fails_the_check_and_is_repaired(conn):
    ids = _tracks(conn)
    stats = vz.vectorize_shards(conn, ["00", "01"])  # built before any analysis: text-only
    assert stats.text_only == 3
    assert vz.validate_vectors(conn)["ok"]  # no analysis yet: text-only is all there is

    for i, title in enumerate(("First", "Second", "Third")):
        vs.add_analysis(conn, ids[title], bpm=90.0 + 10 * i, key="C", mode="major", energy=0.3 + 0.2 * i)
    report = vz.validate_vectors(conn)
    assert not report["ok"] and report["text_only_with_analysis"] == 3
    check = check_result(report)
    assert not check.passed and check.severity.value == "ERROR"

    # the next vectors run, here for shard 01 only, rebuilds shard 00's stale vectors too
    stats = vz.vectorize_shards(conn, ["01"])
    assert stats.repaired_text_only == 3 and stats.text_only == 0
    report = vz.validate_vectors(conn)
    assert report["ok"] and report["text_only"] == 0 and report["text_only_with_analysis"] == 0
    assert check_result(report).passed
    flags = dict(conn.execute("SELECT track_id, text_only FROM track_vectors").fetchall())
    assert flags == {ids["First"]: 0, ids["Second"]: 0, ids["Third"]: 0}


@pytest.mark.usefixtures("text_model")
def test_repair_reaches_shards_outside_the_run_when_the_scaler_stays(conn):
    """With enough analysed tracks the scaler is not refit, so only the repair brings the stale track back."""
    for i in range(vz.SMALL_CATALOG + 2):
        track_id = vs.add_track(conn, f"/lib/b/{i}.flac", title=f"Song {i}", artists=[f"Band {i % 7}"],
                                album=f"Record {i % 5}", genres=["rock"], year=1990 + i % 20, shard="02")
        vs.add_analysis(conn, track_id, bpm=80.0 + i, key="A", mode="minor", energy=(i % 10) / 10)
    late = vs.add_track(conn, "/lib/c/late.flac", title="Late", artists=["Someone"], album="Later", genres=["pop"],
                        year=2020, shard="00")
    vz.vectorize_shards(conn, ["00", "02"])
    assert dict(conn.execute("SELECT track_id, text_only FROM track_vectors WHERE text_only = 1").fetchall()) == {
        late: 1}
    vs.add_analysis(conn, late, bpm=120.0, key="G", mode="major", energy=0.6)
    assert vz.validate_vectors(conn)["text_only_with_analysis"] == 1

    stats = vz.vectorize_shards(conn, ["01"])  # nothing of its own to do
    assert not stats.scaler_refit and stats.repaired_text_only == 1 and stats.vectorized == 1
    assert vz.validate_vectors(conn)["ok"]
