"""Playlist rules on a library handed in as arrays: recordings, filters, the artist window, length, ordering,
path walks, clusters, M3U8 text and request round trips. Pure logic: no catalog, no files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from soniquebay_assets.domain import m3u8
from soniquebay_assets.domain import playlists as pl
from soniquebay_assets.domain.playlists import PlaylistFilters, PlaylistRequest, PlaylistRequestError


def make_library(n: int = 120, *, artists: int = 12, seed: int = 1, dim: int = 16) -> pl.PlaylistLibrary:
    """n tracks of `artists` artists, with tempo, key, energy, moods, genres, durations and unit vectors that
    drift smoothly with the track number (so that paths and clusters have structure to find)."""
    rng = np.random.default_rng(seed)
    angle = np.linspace(0, math.pi, n)
    base = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    matrix = np.hstack([base * 3, rng.normal(0, 0.3, (n, dim - 2))]).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    titles = [f"Song {i}" for i in range(n)]
    names = [f"Artist {i % artists}" for i in range(n)]
    duration = rng.uniform(150, 300, n)
    library = pl.PlaylistLibrary(
        track_ids=np.arange(1, n + 1, dtype=np.int64), paths=[f"/music/a{i % artists}/{i:03d}.flac" for i in range(n)],
        roots=["/music"] * n, titles=titles, artists=names, albums=[f"Album {i // 10}" for i in range(n)],
        album_ids=np.arange(n, dtype=np.int64) // 10, artist_sets=[frozenset({i % artists}) for i in range(n)],
        artist_names={a: f"Artist {a}" for a in range(artists)}, duration=duration,
        year=np.array([1970 + i % 50 for i in range(n)], dtype=np.float64), bpm=rng.uniform(70, 170, n),
        energy=rng.uniform(0, 1, n), danceability=rng.uniform(0, 1, n), loudness=rng.uniform(-20, -6, n),
        moods={m: rng.uniform(0, 1, n) for m in pl.MOODS}, camelot=rng.integers(0, 24, n).astype(np.int16),
        genres=[frozenset({"rock" if i < n // 2 else "jazz"}) for i in range(n)],
        match_status=np.array(["matched" if i % 3 else "unmatched" for i in range(n)], dtype=object),
        recording=pl.recording_groups([[] for _ in range(n)], titles, names, duration),
        utf8_path=np.ones(n, dtype=bool), matrix=matrix, vector_row=np.arange(n, dtype=np.int64),
        vector_track_row=np.arange(n, dtype=np.int64), genre_display={"rock": "Rock", "jazz": "Jazz"},
    )  # fmt: skip
    return library


def rows_of(library: pl.PlaylistLibrary, playlist: pl.Playlist) -> list[int]:
    return [library.position[e.track_id] for e in playlist.entries]


def assert_rules(library: pl.PlaylistLibrary, playlist: pl.Playlist, window: int = 3) -> None:
    rows = rows_of(library, playlist)
    groups = [int(library.recording[r]) for r in rows]
    assert len(groups) == len(set(groups)), "a recording appears twice"
    assert pl.window_ok(library.artist_sets, rows, window), [library.artists[r] for r in rows]
    assert [e.position for e in playlist.entries] == list(range(1, len(rows) + 1))


def ranked(library, request, mask=None, start=()):
    scores = library.matrix @ library.matrix[0]
    return pl.ranked_playlist(library, request, name="t", candidates=np.arange(len(library)), scores=scores,
                              mask=np.ones(len(library), bool) if mask is None else mask, start=list(start),
                              start_reason=lambda r: "seed", reason=lambda r, s: f"{s:.2f}")


def test_one_recording_once_by_id_and_by_title_artist_duration():
    titles = ["Song", "song!", "Song", "Song", "Other", "Other"]
    artists = ["A", "a", "A", "B", "C", "D"]
    durations = np.array([200.0, 201.5, 260.0, 200.0, 100.0, 300.0])
    ids = [[], [], [], [], ["mbid-1"], ["mbid-1"]]
    groups = pl.recording_groups(ids, titles, artists, durations)
    assert groups[0] == groups[1]          # same title and artist, 1.5 s apart: one recording
    assert groups[0] != groups[2]          # a minute longer: another recording (a live take, an edit)
    assert groups[0] != groups[3]          # another artist
    assert groups[4] == groups[5]          # one MusicBrainz recording id, whatever the tags say


def test_duplicates_of_a_recording_never_both_enter():
    library = make_library(60)
    library.recording[1] = library.recording[0]  # two files of one song, both very near the query
    playlist = ranked(library, PlaylistRequest("similar", track="1", length=20))
    rows = rows_of(library, playlist)
    assert not (0 in rows and 1 in rows)
    assert_rules(library, playlist)


def test_artist_window_holds_even_when_one_artist_dominates_the_candidates():
    library = make_library(90, artists=3)
    for window in (2, 3):
        playlist = ranked(library, PlaylistRequest("similar", track="1", length=30, artist_window=window))
        assert_rules(library, playlist, window)
        assert len(playlist.entries) == 30
    # three artists cannot fill a window of 4: the playlist stops short rather than break the rule
    short = ranked(library, PlaylistRequest("similar", track="1", length=30, artist_window=4))
    assert_rules(library, short, 4)
    assert len(short.entries) == 3 and short.notes


def test_length_in_entries_and_in_minutes():
    library = make_library(200)
    assert len(ranked(library, PlaylistRequest("similar", track="1", length=17)).entries) == 17
    for minutes in (20, 45):
        playlist = ranked(library, PlaylistRequest("similar", track="1", minutes=minutes))
        longest = max(e.duration for e in playlist.entries)
        assert abs(playlist.seconds - minutes * 60) <= longest / 2 + 1e-6, playlist.seconds


def test_seed_starts_the_playlist_and_scores_order_the_choice():
    library = make_library(100)
    playlist = ranked(library, PlaylistRequest("similar", track="1", length=10), start=[0])
    assert playlist.entries[0].track_id == 1 and playlist.entries[0].reason == "seed"
    chosen = set(rows_of(library, playlist)[1:])
    scores = library.matrix @ library.matrix[0]
    # nearly all of the chosen tracks are among the 25 nearest (flow may pick a slightly less similar one)
    nearest = set(np.argsort(-scores)[1:26].tolist())
    assert len(chosen & nearest) >= 8


def test_filters_keep_only_passing_tracks():
    library = make_library(150)
    filters = PlaylistFilters(bpm_min=90, bpm_max=140, energy_min=0.2, genres=("Rock",), year_min=1980,
                              moods=(("happy", 0.3),), match_status=("matched",), duration_max=280)
    mask = pl.filter_mask(library, filters)
    assert 0 < mask.sum() < len(library)
    playlist = pl.filter_playlist(library, PlaylistRequest("filter", length=10, filters=filters), mask, name="f")
    for row in rows_of(library, playlist):
        assert 90 <= library.bpm[row] <= 140 and library.energy[row] >= 0.2 and "rock" in library.genres[row]
        assert library.year[row] >= 1980 and library.moods["happy"][row] >= 0.3
        assert library.match_status[row] == "matched" and library.duration[row] <= 280
    assert_rules(library, playlist)


def test_unknown_values_fail_a_bound_and_keys_follow_the_camelot_wheel():
    library = make_library(40)
    library.bpm[3] = math.nan
    assert not pl.filter_mask(library, PlaylistFilters(bpm_min=0))[3]
    eight_a = pl.camelot_index("8A")
    compatible = {pl.camelot_index(c) for c in ("8A", "7A", "9A", "8B")}
    mask = pl.filter_mask(library, PlaylistFilters(key="A minor", compatible_keys=True))
    assert {int(library.camelot[r]) for r in np.flatnonzero(mask)} <= compatible
    assert set(np.flatnonzero(pl.filter_mask(library, PlaylistFilters(key="8A")))) == \
        set(np.flatnonzero(library.camelot == eight_a))
    library.camelot[:] = -1
    with pytest.raises(PlaylistRequestError, match="needs a key"):
        pl.filter_mask(library, PlaylistFilters(compatible_keys=True), [0])
    assert pl.camelot_compatible(np.array([pl.camelot_index("12B")]), np.array([pl.camelot_index("1B")]))[0]
    assert not pl.camelot_compatible(np.array([pl.camelot_index("12B")]), np.array([pl.camelot_index("2B")]))[0]


def test_same_request_same_playlist_and_the_seed_changes_a_filter_playlist():
    library = make_library(300)
    request = PlaylistRequest("filter", length=20, seed=5)
    mask = np.ones(len(library), bool)
    first = pl.filter_playlist(library, request, mask, name="f")
    again = pl.filter_playlist(make_library(300), request, mask, name="f")
    assert first == again
    other = pl.filter_playlist(library, PlaylistRequest("filter", length=20, seed=6), mask, name="f")
    assert rows_of(library, other) != rows_of(library, first)


def test_ordering_flows_better_than_random_orders_of_the_same_tracks():
    library = make_library(400, artists=40)
    playlist = pl.filter_playlist(library, PlaylistRequest("filter", length=40, seed=2), np.ones(400, bool),
                                  name="f")
    rows = rows_of(library, playlist)
    ours = pl.transition_quality(library, rows)
    rng = np.random.default_rng(0)
    steps = [pl.transition_quality(library, list(rng.permutation(rows)))["mean_bpm_step"] for _ in range(30)]
    assert ours["mean_bpm_step"] < np.mean(steps)
    assert ours["artist_repeats_in_window"] == 0


def test_path_starts_and_ends_at_its_ends_and_each_step_comes_nearer_the_end():
    library = make_library(200)
    start, end = 5, 190
    playlist = pl.path_playlist(library, PlaylistRequest("path", from_track="6", to_track="191", length=12),
                                start, end, np.ones(200, bool), name="p")
    rows = rows_of(library, playlist)
    assert rows[0] == start and rows[-1] == end and len(rows) == 12
    nearness = [float(library.matrix[r] @ library.matrix[end]) for r in rows]
    assert all(b > a for a, b in zip(nearness, nearness[1:], strict=False)), nearness
    assert_rules(library, playlist)
    with pytest.raises(PlaylistRequestError, match="same recording"):
        library.recording[end] = library.recording[start]
        pl.path_playlist(library, PlaylistRequest("path", from_track="6", to_track="191"), start, end,
                         np.ones(200, bool), name="p")


def test_clusters_split_the_library_coherently_and_deterministically():
    library = make_library(240)
    request = PlaylistRequest("clusters", clusters=4, length=0, seed=3)
    parts = pl.cluster_playlists(library, request, np.ones(240, bool), name="Mix")
    assert [p.name for p in parts] == ["Mix 01", "Mix 02", "Mix 03", "Mix 04"]
    members = [set(rows_of(library, p)) for p in parts]
    assert sum(len(m) for m in members) == 240 and len(set().union(*members)) == 240  # a partition
    # coherent: a cluster's members lie on one stretch of the drift (rock tracks first, jazz after)
    for m in members:
        assert max(m) - min(m) < 120
    assert any("Rock" in p.description for p in parts) and any("Jazz" in p.description for p in parts)
    assert pl.cluster_playlists(library, request, np.ones(240, bool), name="Mix") == parts
    for part in pl.cluster_playlists(library, PlaylistRequest("clusters", clusters=4, length=10), np.ones(240, bool),
                                     name="Mix"):
        assert len(part.entries) == 10
        assert_rules(library, part)


def test_requests_round_trip_through_json_and_bad_ones_say_what_to_change():
    request = PlaylistRequest("radio", artist="X", minutes=30, seed=4,
                              filters=PlaylistFilters(moods=(("relaxed", 0.6),), genres=("Jazz",), bpm_max=120))
    assert PlaylistRequest.from_json(request.to_json()) == request
    for bad, message in ((PlaylistRequest("similar"), "seed track"), (PlaylistRequest("radio"), "one seed"),
                         (PlaylistRequest("path", from_track="1"), "both ends"),
                         (PlaylistRequest("clusters", clusters=0), "number of playlists"),
                         (PlaylistRequest("filter", length=-1), "number of entries"),
                         (PlaylistRequest("filter", length=5, minutes=3), "not both"),
                         (PlaylistRequest("filter", filters=PlaylistFilters(key="H major")), "not a key"),
                         (PlaylistRequest("filter", filters=PlaylistFilters(bpm_min=130, bpm_max=90)), "above"),
                         (PlaylistRequest("filter", filters=PlaylistFilters(moods=(("grumpy", 0.5),))), "mood"),
                         (PlaylistRequest("mixtape"), "unknown playlist kind")):
        with pytest.raises(PlaylistRequestError, match=message):
            bad.validate()
    with pytest.raises(PlaylistRequestError, match="unknown filter"):
        PlaylistRequest.from_json({"kind": "filter", "filters": {"tempo": 3}})


class Entry:
    def __init__(self, path: str, artist: str = "A", title: str = "T", duration: float | None = 61.4):
        self.path, self.artist, self.title, self.duration = path, artist, title, duration


def test_m3u8_text_relative_under_a_root_else_absolute_with_the_prefix():
    entries = [Entry("/srv/music/Artist/Album/01 Song.flac", "Ärtist", "Tïtle,\nwith a break"),
               Entry("/mnt/other/x.mp3", duration=None)]
    roots = ["/srv/music", "/mnt/other"]
    inside = m3u8.render("Mix", entries, playlist_file="/srv/music/Playlists/Mix.m3u8", roots=roots)
    lines = inside.splitlines()
    assert lines[:2] == ["#EXTM3U", "#PLAYLIST:Mix"]
    assert lines[2] == "#EXTINF:61,Ärtist - Tïtle, with a break"
    assert lines[3] == "../Artist/Album/01 Song.flac"
    assert lines[4] == "#EXTINF:-1,A - T" and lines[5] == "/mnt/other/x.mp3"  # another root: absolute
    prefix = m3u8.PathPrefix.parse("/srv/music=/music")
    outside = m3u8.render("Mix", entries, playlist_file="/var/playlists/Mix.m3u8", roots=roots, prefix=prefix)
    assert outside.splitlines()[3] == "/music/Artist/Album/01 Song.flac"
    assert outside.splitlines()[5] == "/mnt/other/x.mp3"
    assert m3u8.PathPrefix.parse("/srv/music/=/music").apply("/srv/musicals/x") == "/srv/musicals/x"
    for bad in ("/a", "a=/b", "/a=b", "=/b"):
        with pytest.raises(m3u8.PathPrefixError):
            m3u8.PathPrefix.parse(bad)
    assert m3u8.file_name("AC/DC: best?") == "AC_DC_ best_.m3u8"
    assert m3u8.file_name("..") == "playlist.m3u8"
