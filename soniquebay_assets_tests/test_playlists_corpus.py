"""Playlists of every kind on really analysed and vectorized corpus tracks: the rules hold (one recording once,
the artist window, the length, the path's ends and steps, the same output for the same seed), and the M3U8 files
the command writes are read back by a reader that is not ours (the `m3u8` package) to files that exist."""

from __future__ import annotations

import json
from pathlib import Path

import m3u8 as m3u8_reader
import numpy as np
import pytest

from soniquebay_assets.catalog import db
from soniquebay_assets.catalog import playlists as repo
from soniquebay_assets.cli.main import main
from soniquebay_assets.domain import playlists as pl
from soniquebay_assets.domain.playlists import PlaylistFilters, PlaylistRequest
from soniquebay_assets.pipeline import playlists as pipeline
from soniquebay_assets.settings import DataDir
from soniquebay_assets_tests.playlists_support import analysed_corpus  # noqa: F401  (session fixture)
from soniquebay_assets_tests.scan_helpers import scan_catalog

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


@pytest.fixture(scope="module")
def library(analysed_corpus):  # noqa: F811
    with db.connection(analysed_corpus.url) as conn:
        yield pipeline.library_of(conn)


def _rows(library, playlist):
    return [library.position[e.track_id] for e in playlist.entries]


def _assert_rules(library, playlist, window=3):
    rows = _rows(library, playlist)
    groups = [int(library.recording[r]) for r in rows]
    assert len(groups) == len(set(groups)), [e.path for e in playlist.entries]
    assert pl.window_ok(library.artist_sets, rows, window), [e.artist for e in playlist.entries]
    assert all(Path(e.path).is_file() for e in playlist.entries)


def _track(library, fragment: str) -> int:
    return next(int(library.track_ids[i]) for i, p in enumerate(library.paths) if fragment in p)


def test_every_kind_keeps_the_rules_and_the_same_seed_gives_the_same_playlist(library, analysed_corpus):  # noqa: F811
    assert library.has_vectors and len(library) >= 50
    calm = _track(library, "calm_acoustic_1")
    requests = [
        PlaylistRequest("similar", track=str(calm), length=12),
        PlaylistRequest("radio", artist="Jens Erler", length=10),
        PlaylistRequest("text", text="energetic electronic music", length=10),
        PlaylistRequest("filter", length=15, seed=4, filters=PlaylistFilters(bpm_min=60, bpm_max=160)),
        PlaylistRequest("path", from_track=str(calm), to_track=str(_track(library, "foxrun")),
                        length=8),
        PlaylistRequest("clusters", clusters=3, length=6, seed=2),
    ]
    for request in requests:
        made = pipeline.generate(library, request)
        assert made, request
        for playlist in made:
            _assert_rules(library, playlist)
            if request.kind in ("path", "clusters"):  # a walk or a cluster may run out of tracks: then shorter,
                assert 2 <= len(playlist.entries) <= request.length  # and it says so
                assert len(playlist.entries) == request.length or playlist.notes
            else:
                assert len(playlist.entries) == request.length, (request.kind, playlist.notes)
            assert all(e.reason for e in playlist.entries)
        repo.forget_libraries()  # the same catalog read afresh gives the same playlists
        with db.connection(analysed_corpus.url) as conn:
            assert pipeline.generate(conn, request) == made, request.kind
    filters = PlaylistFilters(bpm_min=60, bpm_max=160)
    first = pipeline.generate(library, PlaylistRequest("filter", length=15, seed=4, filters=filters))[0]
    other = pipeline.generate(library, PlaylistRequest("filter", length=15, seed=5, filters=filters))[0]
    assert [e.track_id for e in first.entries] != [e.track_id for e in other.entries]
    for entry in first.entries:
        assert 60 <= entry.bpm <= 160


def test_similar_starts_with_its_seed_and_text_finds_the_described_mood(library):
    seed = _track(library, "energetic_acoustic_1")
    similar = pipeline.generate(library, PlaylistRequest("similar", track=str(seed), length=5))[0]
    assert similar.entries[0].track_id == seed and similar.entries[0].reason == "the seed track"
    text = pipeline.generate(library, PlaylistRequest("text", text="calm", length=5))[0]
    assert sum("calm" in e.path for e in text.entries) >= 3, [e.path for e in text.entries]


def test_a_target_in_minutes_is_met_within_half_a_track(library):
    playlist = pipeline.generate(library, PlaylistRequest("filter", minutes=10, seed=1))[0]
    longest = max(e.duration for e in playlist.entries)
    assert abs(playlist.seconds - 600) <= longest / 2 + 1e-6, (playlist.seconds, longest)


def test_path_runs_from_its_first_to_its_last_track_each_step_nearer_the_end(library):
    start, end = _track(library, "calm_acoustic_1"), _track(library, "energetic_electronic_2")
    playlist = pipeline.generate(library, PlaylistRequest("path", from_track=str(start), to_track=str(end),
                                                          length=6))[0]
    assert playlist.entries[0].track_id == start and playlist.entries[-1].track_id == end
    end_vector = library.vector(library.position[end])
    nearness = [float(library.vector(library.position[e.track_id]) @ end_vector) for e in playlist.entries]
    assert all(b > a for a, b in zip(nearness, nearness[1:], strict=False)), nearness


def test_ordering_beats_random_orders_of_the_same_tracks(library):
    playlist = pipeline.generate(library, PlaylistRequest("filter", length=20, seed=3))[0]
    report = pipeline.quality_report(library, playlist)
    assert report["ours"]["mean_bpm_step"] < report["random_order"]["mean_bpm_step"], report
    assert report["ours"]["artist_repeats_in_window"] == 0


def test_the_command_writes_m3u8_a_third_party_reader_resolves(analysed_corpus, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "lists"
    seed = _track_from_catalog(analysed_corpus, "calm_acoustic_1")
    args = ["--data-dir", str(analysed_corpus.data_dir), "--json", "-n", "8"]
    assert main(["playlist", "similar", "--track", str(seed), "--m3u8", f"{out}/", *args]) == 0
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["position"] for e in entries] == list(range(1, 9))
    assert {"position", "track_id", "path", "artist", "title", "duration", "reason"} <= set(entries[0])
    files = list(out.glob("*.m3u8"))
    assert len(files) == 1
    parsed = m3u8_reader.load(str(files[0]))
    assert [s.uri for s in parsed.segments] == [e["path"] for e in entries]  # outside every root: absolute
    assert all(Path(s.uri).is_file() for s in parsed.segments)
    assert [round(s.duration) for s in parsed.segments] == [round(e["duration"]) for e in entries]
    assert parsed.segments[0].title == f"{entries[0]['artist']} - {entries[0]['title']}"
    # clusters: one file per playlist in the folder; a file argument is refused
    assert main(["playlist", "clusters", "--k", "2", "--m3u8", str(out / "clusters"), *args]) == 0
    assert len(list((out / "clusters").glob("*.m3u8"))) == 2
    assert main(["playlist", "clusters", "--k", "2", "--m3u8", str(files[0]), *args]) == 2


def _track_from_catalog(corpus, fragment):
    with db.connection(corpus.url) as conn:
        return conn.execute("SELECT track_id FROM tracks WHERE path LIKE ?", (f"%{fragment}%",)).fetchone()[0]


def test_playlist_under_a_library_root_points_relatively_and_reads_back(tmp_path, make_audio, capsys):
    root = tmp_path / "Music"
    for i in range(6):
        make_audio(root / f"Artist {i % 3}" / "Album" / f"0{i} Söng {i}.flac", seconds=2.0, title=f"Söng {i}",
                   artist=f"Artist {i % 3}", album="Album")
    data = tmp_path / "data"
    with db.connection(DataDir(data).catalog_url) as conn:
        scan_catalog(conn, [root])
    target = root / "Playlists" / "mine.m3u8"
    assert main(["playlist", "filter", "-n", "6", "--m3u8", str(target), "--data-dir", str(data),
                 "--path-prefix", "/nowhere=/music"]) == 0
    text = target.read_text(encoding="utf-8")
    assert "../Artist 0/Album/00 Söng 0.flac" in text and "/music" not in text
    parsed = m3u8_reader.load(str(target))
    assert len(parsed.segments) == 6
    resolved = [Path(s.absolute_uri) for s in parsed.segments]
    assert all(p.is_file() and root in p.resolve().parents for p in resolved), resolved
    assert not list(target.parent.glob(".tmp-*"))  # the temp file of the atomic write is gone


def test_bad_requests_exit_2_with_what_to_change(analysed_corpus, capsys):  # noqa: F811
    data = ["--data-dir", str(analysed_corpus.data_dir)]
    cases = [(["playlist", "similar", "--track", "/no/such.flac"], "no track"),
             (["playlist", "radio", "--artist", "Nobody At All"], "no artist"),
             (["playlist", "filter", "--compatible-keys"], "needs a key"),
             (["playlist", "filter", "--key", "H major"], "not a key"),
             (["playlist", "filter", "--path-prefix", "music=/x", "--m3u8", "/tmp/x.m3u8"], "absolute paths"),
             (["playlist", "clusters", "--k", "100000"], "from 1 to 500")]
    for argv, message in cases:
        assert main([*argv, *data]) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_cluster_names_come_from_genres_moods_and_tempo(library):
    parts = pipeline.generate(library, PlaylistRequest("clusters", clusters=3, length=0, seed=1))
    left_out = sum(int(n.split()[0]) for p in parts for n in p.notes if "left out" in n)
    assert sum(len(p.entries) for p in parts) + left_out == len(np.unique(library.recording[library.vector_row >= 0]))
    assert left_out <= 3
    for part in parts:
        assert "BPM" in part.description and part.description != "mixed", part.description
