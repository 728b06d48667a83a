"""The whole chain on the shared corpus: known albums come out right; every edge file goes through one scan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from soniquebay_assets_tests.scan_helpers import catalog, errors_by_path, materialize_scan, test_instance

pytestmark = [pytest.mark.corpus, pytest.mark.both_backends]


def _albums(data_dir: Path) -> dict[str, dict]:
    conn = catalog(data_dir)
    try:
        rows = conn.execute(
            "SELECT al.title, al.album_artist, al.is_compilation, al.musicbrainz_release_id, COUNT(t.track_id), "
            "COUNT(DISTINCT substr(t.path, 1, length(t.path) - length(replace(t.path, '/', '')))) "
            "FROM albums al JOIN tracks t USING (album_id) GROUP BY al.album_id").fetchall()
        return {r[0]: {"album_artist": r[1], "compilation": bool(r[2]), "mbid": r[3], "tracks": r[4]} for r in rows}
    finally:
        conn.close()


def test_converted_albums(corpus_dir, tmp_path, data_dir):
    with test_instance(tmp_path) as instance:
        materialize_scan(instance, corpus_dir / "converted", data_dir)
    albums = _albums(data_dir)
    assert len(albums) == 5
    sampler = albums["Free Game Music Sampler"]
    assert sampler == {"album_artist": "Various Artists", "compilation": True, "mbid": sampler["mbid"], "tracks": 4}
    assert sampler["mbid"]  # the release MBID is stored, so Cover Art Archive is reachable
    expected = json.loads((corpus_dir / "converted/EXPECTED.json").read_text())
    wesnoth = next(v for k, v in expected.items() if "Wesnoth" in k)
    assert albums[wesnoth["album"]]["album_artist"] == wesnoth["albumartist"]
    conn = catalog(data_dir)
    artists = {r[0] for r in conn.execute("SELECT name FROM artists")}
    conn.close()
    assert {"Muldjord", "El Senator", "Jeremy Nicoll", "Mattias Westlund", "Martin Severn"} <= artists
    assert not errors_by_path(data_dir)


@pytest.mark.slow
def test_every_edge_file_goes_through_one_scan(corpus_dir, tmp_path, data_dir):
    with test_instance(tmp_path) as instance:
        materialize_scan(instance, corpus_dir / "edge", data_dir)
    conn = catalog(data_dir)
    stages = dict(conn.execute("SELECT stage, COUNT(*) FROM files GROUP BY stage").fetchall())
    tracks = conn.execute("SELECT COUNT(*) FROM tracks").fetchone()[0]
    conn.close()
    assert set(stages) <= {"cataloged", "error"}, stages  # nothing left half-way
    errors = errors_by_path(data_dir)
    assert stages.get("error", 0) == sum(1 for e in errors.values() if e["stage"] == "extract")
    assert tracks > 150 and tracks > 3 * stages.get("error", 0)
    assert all(e["reason"] and e["detail"] for e in errors.values())
