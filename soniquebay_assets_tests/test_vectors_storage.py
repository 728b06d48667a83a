"""sqlite-vec storage, validation, orphans and search in a real catalog file (hand-made vectors, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from soniquebay_assets.catalog import db, vector_index, vector_search, vectors
from soniquebay_assets.domain import embedding_text as et
from soniquebay_assets_tests import vectors_support as vs

TEXT_DIM = 12


def _unit(rng, dim):
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


pytestmark = pytest.mark.both_backends


@pytest.fixture()
def conn(catalog_target):
    connection = vs.new_catalog(catalog_target)
    vectors.load_extension(connection)
    yield connection
    connection.close()


def _space(conn, text_dim=TEXT_DIM, weights=None):
    return vectors.reset_space(conn, model_name="test-model", text_dim=text_dim, weights=weights or et.Weights())


def _store(conn, settings, items):
    rows = [vectors.VectorRow(tid, vec, f"h{tid}", False, 1, f"text {tid}") for tid, vec in items]
    with db.transaction(conn):
        vectors.write_vectors(conn, settings, rows)


def test_driver_is_detected_and_reported(conn):
    report = vectors.driver_report(conn)
    if db.dialect_of(conn) == db.POSTGRESQL:
        assert report["sqlite_driver"] == "postgresql" and report["vector_store"] == "bytea table"
        return
    assert report["sqlite_driver"] == db.detect_driver().name
    assert report["sqlite_vec_version"].startswith("v")
    assert db.detect_driver().can_load_extensions


def test_round_trip_and_metadata(conn):
    rng = np.random.default_rng(0)
    settings = _space(conn)
    assert settings.dim == TEXT_DIM + len(et.FEATURE_NAMES)
    ids = [vs.add_track(conn, f"/lib/a/{i}.flac", title=f"T{i}", artists=["A"], album="Al") for i in range(3)]
    stored = {tid: _unit(rng, settings.dim) for tid in ids}
    _store(conn, settings, stored.items())
    for tid, vec in stored.items():
        assert np.array_equal(vectors.get_vector(conn, tid), vec)
    row = conn.execute("SELECT input_hash, text_only, norm, config_key FROM track_vectors WHERE track_id = ?", (ids[0],)).fetchone()
    assert row[0] == f"h{ids[0]}" and row[1] == 0 and row[2] == pytest.approx(1.0) and row[3] == settings.config_key
    # rewriting replaces, never duplicates
    _store(conn, settings, [(ids[0], _unit(rng, settings.dim))])
    assert conn.execute(f"SELECT COUNT(*) FROM {vectors.VEC_TABLE}").fetchone()[0] == 3
    assert vectors.read_settings(conn).generation > settings.generation


def test_bad_vectors_are_rejected_before_any_write(conn):
    rng = np.random.default_rng(1)
    settings = _space(conn)
    tid = vs.add_track(conn, "/lib/a/1.flac", title="T", artists=["A"], album="Al")
    nan = _unit(rng, settings.dim)
    nan[3] = np.nan
    for bad, message in ((nan, "NaN"), (_unit(rng, settings.dim - 1), "dimension"), (2 * _unit(rng, settings.dim), "normalized")):
        with pytest.raises(ValueError, match=message):
            _store(conn, settings, [(tid, bad)])
    assert conn.execute(f"SELECT COUNT(*) FROM {vectors.VEC_TABLE}").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM track_vectors").fetchone()[0] == 0


def test_a_vector_problem_is_recorded_like_every_stage_error(conn):
    tid = vs.add_track(conn, "/lib/a/1.flac", title="T", artists=["A"], album="Al")
    for _ in range(2):
        vectors.record_vector_error(conn, tid, "bad_vector", "vector has NaN " + "x" * 3000)
    vectors.record_vector_error(conn, tid + 999, "bad_vector", "a track deleted meanwhile is not an error row")
    rows = conn.execute("SELECT path, stage, reason, length(detail), occurrences, severity, shard FROM scan_errors"
                        ).fetchall()
    shard = conn.execute("SELECT shard FROM tracks WHERE track_id = ?", (tid,)).fetchone()[0]
    assert [tuple(r) for r in rows] == [("/lib/a/1.flac", "vector", "bad_vector", 2000, 2, "error", shard)]


def test_dimension_change_rebuilds_cleanly(conn):
    rng = np.random.default_rng(2)
    settings, rebuilt = vectors.ensure_space(conn, model_name="m1", text_dim=TEXT_DIM, weights=et.Weights())
    assert rebuilt
    tid = vs.add_track(conn, "/lib/a/1.flac", title="T", artists=["A"], album="Al")
    _store(conn, settings, [(tid, _unit(rng, settings.dim))])
    same, rebuilt = vectors.ensure_space(conn, model_name="m1", text_dim=TEXT_DIM, weights=et.Weights())
    assert not rebuilt and same.config_key == settings.config_key
    bigger, rebuilt = vectors.ensure_space(conn, model_name="m2", text_dim=2 * TEXT_DIM, weights=et.Weights())
    assert rebuilt and bigger.dim == 2 * TEXT_DIM + len(et.FEATURE_NAMES)
    assert conn.execute(f"SELECT COUNT(*) FROM {vectors.VEC_TABLE}").fetchone()[0] == 0
    _store(conn, bigger, [(tid, _unit(rng, bigger.dim))])  # no dimension error in the new space
    assert vectors.get_vector(conn, tid).shape == (bigger.dim,)
    reweighted, rebuilt = vectors.ensure_space(conn, model_name="m2", text_dim=2 * TEXT_DIM, weights=et.Weights(audio=1.0))
    assert rebuilt and reweighted.weights.audio == 1.0
    assert vectors.validate(conn)["n_vectors"] == 0


def test_orphans_are_cleaned_and_validation_reports(conn):
    rng = np.random.default_rng(3)
    settings = _space(conn)
    ids = [vs.add_track(conn, f"/lib/a/{i}.flac", title=f"T{i}", artists=["A"], album="Al") for i in range(4)]
    _store(conn, settings, [(tid, _unit(rng, settings.dim)) for tid in ids[:3]])
    report = vectors.validate(conn)
    assert report["ok"] and report["n_vectors"] == 3 and report["missing"] == 1 and report["orphans"] == 0
    with db.transaction(conn):
        conn.execute("DELETE FROM files WHERE file_id = (SELECT file_id FROM tracks WHERE track_id = ?)", (ids[0],))
    report = vectors.validate(conn)
    assert not report["ok"] and report["orphans"] == 1
    assert vectors.delete_orphans(conn) == 1
    report = vectors.validate(conn)
    assert report["ok"] and report["n_vectors"] == 2 and report["orphans"] == 0


def test_validation_finds_corrupt_vectors(conn):
    rng = np.random.default_rng(4)
    settings = _space(conn)
    ids = [vs.add_track(conn, f"/lib/a/{i}.flac", title=f"T{i}", artists=["A"], album="Al") for i in range(2)]
    _store(conn, settings, [(tid, _unit(rng, settings.dim)) for tid in ids])
    broken = _unit(rng, settings.dim)
    broken[0] = np.inf
    with db.transaction(conn):  # bypass write_vectors' checks, as a buggy writer would
        conn.execute(f"UPDATE {vectors.VEC_TABLE} SET embedding = ? WHERE track_id = ?", ((3 * _unit(rng, settings.dim)).tobytes(), ids[0]))
        conn.execute(f"UPDATE {vectors.VEC_TABLE} SET embedding = ? WHERE track_id = ?", (broken.tobytes(), ids[1]))
    report = vectors.validate(conn)
    assert not report["ok"] and report["bad_norm"] == 1 and report["non_finite"] == 1


def test_plain_connection_without_extension_still_reads_the_catalog(conn, catalog_target):
    _space(conn)
    vs.add_track(conn, "/lib/a/1.flac", title="T", artists=["A"], album="Al")
    plain = db.connect(catalog_target)  # other stages never load sqlite-vec
    try:
        assert plain.execute("SELECT COUNT(*) FROM tracks").fetchone()[0] == 1
        with db.transaction(plain):
            plain.execute("DELETE FROM files")  # deleting tracks must not need the vec0 module
        assert plain.execute("SELECT COUNT(*) FROM tracks").fetchone()[0] == 0
    finally:
        plain.close()


def _radio_catalog(conn):
    """Two albums; track vectors all close to one direction; BPM and keys vary."""
    rng = np.random.default_rng(5)
    settings = _space(conn)
    base = _unit(rng, settings.dim)
    rows, ids = [], {}
    plan = [("seed", "A", 120, "8A"), ("same_album", "A", 121, "8A"), ("fast", "B", 170, "8A"),
            ("clash", "B", 122, "3B"), ("neighbour", "B", 119, "9A"), ("relative", "B", 118, "8B")]  # fmt: skip
    for i, (title, album, bpm, camelot) in enumerate(plan):
        tid = vs.add_track(conn, f"/lib/{album}/{title}.flac", title=title, artists=[album], album=album)
        vs.add_analysis(conn, tid, bpm=float(bpm), camelot=camelot)
        noise = _unit(rng, settings.dim)
        noise -= (noise @ base) * base  # orthogonal: similarity to the seed falls strictly with i
        vec = base + 0.1 * i * noise / np.linalg.norm(noise)
        rows.append((tid, vec / np.linalg.norm(vec)))
        ids[title] = tid
    _store(conn, settings, rows)
    return ids


@pytest.mark.parametrize("method", ["index", "sqlite"])
def test_search_orders_by_similarity_and_excludes_the_seed(conn, method):
    ids = _radio_catalog(conn)
    found = vector_search.search_similar(conn, track_id=ids["seed"], k=10, method=method)
    assert [r.track_id for r in found] == [ids[t] for t in ("same_album", "fast", "clash", "neighbour", "relative")]
    scores = [r.score for r in found]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    assert found[0].path == "/lib/A/same_album.flac" and found[0].artists == ["A"]


def test_radio_filters(conn):
    ids = _radio_catalog(conn)

    def titles(**kwargs):
        found = vector_search.search_similar(conn, track_id=ids["seed"], k=10, filters=vector_search.RadioFilters(**kwargs))
        return [r.title for r in found]

    assert "same_album" not in titles(exclude_same_album=True)
    assert titles(bpm_min=115, bpm_max=125) == ["same_album", "clash", "neighbour", "relative"]
    assert titles(compatible_keys=True) == ["same_album", "fast", "neighbour", "relative"]
    assert titles(exclude_same_album=True, compatible_keys=True, bpm_max=150) == ["neighbour", "relative"]


def test_search_by_vector_and_unknown_track(conn):
    ids = _radio_catalog(conn)
    seed_vector = vectors.get_vector(conn, ids["seed"])
    found = vector_search.search_similar(conn, vector=seed_vector, k=1)
    assert found[0].track_id == ids["seed"] and found[0].score == pytest.approx(1.0, abs=1e-5)
    missing = vs.add_track(conn, "/lib/C/new.flac", title="new", artists=["C"], album="C")
    with pytest.raises(LookupError, match="no vector"):
        vector_search.search_similar(conn, track_id=missing)
    assert vector_search.resolve_track(conn, "/lib/A/seed.flac") == ids["seed"]
    assert vector_search.resolve_track(conn, str(ids["seed"])) == ids["seed"]
    assert vector_search.resolve_track(conn, "/nope.flac") is None


def test_index_follows_catalog_changes(conn):
    ids = _radio_catalog(conn)
    before = vector_search.get_index(conn)
    assert vector_search.get_index(conn) is before  # cached while nothing changed
    with db.transaction(conn):
        conn.execute("DELETE FROM files WHERE path = '/lib/A/same_album.flac'")
    vectors.delete_orphans(conn)
    found = vector_search.search_similar(conn, track_id=ids["seed"], k=10)
    assert ids["same_album"] not in [r.track_id for r in found]
    assert vector_search.get_index(conn) is not before


def _clustered(rng, n, dim, clusters):
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    data = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return data / np.linalg.norm(data, axis=1, keepdims=True)


def test_list_probing_plus_rescoring_recall_against_exact(tmp_path):
    rng = np.random.default_rng(6)
    n, dim = 30_000, 96  # above EXACT_BELOW, so the lists are really probed
    data = _clustered(rng, n, dim, 300)
    index = vector_search.index_from_arrays(np.arange(n, dtype=np.int64), data, tmp_path)
    assert n > vector_search.EXACT_BELOW
    recalls = []
    for q in rng.integers(0, n, 60):
        query = data[q] + 0.1 * rng.standard_normal(dim).astype(np.float32)
        query /= np.linalg.norm(query)
        rows, _ = index.ranked(query, vector_search.MIN_CANDIDATES)
        exact_rows, _ = index.exact(query, 10)
        recalls.append(len(set(rows[:10].tolist()) & set(exact_rows.tolist())) / 10)
    assert np.mean(recalls) >= 0.95
    # the probe really narrowed the set (otherwise this test could not fail)
    assert len(index.probe(data[0], vector_index.POOL_ROWS)) < n / 2
