"""Placeholder tag values ("<Unknown>", "(None)", "n/a"...) are missing values, and an album folder whose files
share a title stays one album when one file lacks the album-artist tag: real files written with mutagen in every
common tag format, read by read_tags and cataloged by the scan chain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mutagen import id3
from mutagen.flac import FLAC
from mutagen.mp4 import MP4
from mutagen.oggvorbis import OggVorbis

from soniquebay_assets.artwork.sources import build_sources
from soniquebay_assets.catalog.db import open_catalog
from soniquebay_assets.domain.albums import UNKNOWN_ARTIST
from soniquebay_assets.domain.tag_values import PLACEHOLDERS, TAG_RULES_VERSION, is_placeholder
from soniquebay_assets.domain.tags import apply_fallbacks, read_tags
from soniquebay_assets.pipeline.covers import fetch_album_covers, fetch_artist_images
from soniquebay_assets.pipeline.scan import catalog_shards, extract_shards, inventory_shards, plan_scan
from soniquebay_assets.settings import DataDir
from soniquebay_assets_tests.audio_factory import write_audio, write_tagged
from soniquebay_assets_tests.fake_artwork_server import fake_clock_http, json_reply, serve
from soniquebay_assets_tests.scan_helpers import scan_catalog


@pytest.mark.parametrize("value", ["<Unknown>", "Unknown", "unknown artist", "Unknown Album", "(None)", "none",
                                   "None", "non", "n/a", "N/A", "-", "?", "", "   ", "[unknown]", " <UNKNOWN> ",
                                   "(Unknown Artist)", "\x00"])
def test_placeholders_are_missing(value):
    assert is_placeholder(value)


@pytest.mark.parametrize("value", ["None of Your Business", "Unknown Pleasures", "The Unknown", "Nonesuch",
                                   "N.W.A", "?uestlove", "-M-", "Track 01 (Remix)", "Untitled", "Other", "AC/DC",
                                   "<Unknown> Remix", "NaN"])
def test_real_names_are_kept(value):
    assert not is_placeholder(value)
    assert not is_placeholder(value, "title")


def test_field_patterns_only_apply_to_their_field():
    assert not is_placeholder("Track 01", "title")  # real releases have such titles
    assert is_placeholder("Unknown album (12/2/2008 3:45:10 PM)", "album")
    assert not is_placeholder("Unknown album (12/2/2008 3:45:10 PM)", "artists")
    assert all(is_placeholder(v) for v in PLACEHOLDERS)


def _mp3(path: Path, version: int, frames: list) -> Path:
    write_audio(path)
    tag = id3.ID3()
    for frame in frames:
        tag.add(frame)
    tag.save(str(path), v2_version=version)
    return path


def _vorbis(path: Path, cls, tags: dict[str, list[str]]) -> Path:
    write_audio(path)
    audio = cls(str(path))
    if audio.tags is None:
        audio.add_tags()
    for key, values in tags.items():
        audio.tags[key] = values
    audio.save()
    return path


def _m4a(path: Path, source: Path, tags: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)
    audio = MP4(str(path))
    audio.delete()
    audio = MP4(str(path))
    audio.add_tags() if audio.tags is None else None
    for key, value in tags.items():
        audio.tags[key] = value
    audio.save()
    return path


@pytest.fixture()
def placeholder_library(tmp_path, corpus_dir):
    """One file per tag format, each with placeholders in several fields and a real value next to them."""
    root = tmp_path / "lib"
    _mp3(root / "Folder MP3 23" / "01 - First Song.mp3", 3, [
        id3.TIT2(encoding=1, text=["[Unknown Title]"]), id3.TPE1(encoding=1, text=["<Unknown>"]),
        id3.TALB(encoding=1, text=["none"]), id3.TCON(encoding=1, text=["(None)"]),
        id3.TPE2(encoding=1, text=["Unknown Artist"]), id3.TXXX(encoding=1, desc="ALBUMARTIST", text=["Real AA"]),
    ])
    _mp3(root / "Folder MP3 24" / "02 Second.mp3", 4, [
        id3.TIT2(encoding=3, text=["None of Your Business"]), id3.TPE1(encoding=3, text=["Real Artist", "[unknown]"]),
        id3.TALB(encoding=3, text=["Unknown Pleasures"]), id3.TCON(encoding=3, text=["Rock", "n/a"]),
        id3.TCOM(encoding=3, text=["?"]),
    ])
    _vorbis(write_audio(root / "Folder FLAC" / "03 - Third.flac"), FLAC, {
        "TITLE": ["Unknown"], "ARTIST": ["N/A"], "ALBUM": ["non"], "GENRE": ["Unknown; Jazz"],
        "ALBUMARTIST": ["-"],
    })
    _vorbis(write_audio(root / "Folder Ogg" / "04 - Fourth.ogg"), OggVorbis, {
        "TITLE": ["  "], "ARTIST": ["(None)", "Ogg Artist"], "ALBUM": ["Unknown Album"], "GENRE": ["?"],
    })
    _m4a(root / "Folder M4A" / "05 - Fifth.m4a", corpus_dir / "crossformat" / "lena" / "lena.m4a", {
        "\xa9nam": ["unknown track"], "\xa9ART": ["Unknown Artist"], "\xa9alb": ["(None)"], "\xa9gen": ["-"],
        "aART": ["<unknown>"],
    })
    return root


@pytest.mark.corpus
def test_read_tags_drops_placeholders_in_every_format(placeholder_library):
    root = placeholder_library
    by_name = {p.name: apply_fallbacks(read_tags(p), p, root) for p in root.rglob("*.*")}
    mp3_23 = by_name["01 - First Song.mp3"]
    assert mp3_23.tag_formats == ["id3v2.3"]
    assert (mp3_23.title, mp3_23.artists, mp3_23.album, mp3_23.genres) == ("First Song", [], "Folder MP3 23", [])
    assert mp3_23.album_artists == ["Real AA"]  # the placeholder TPE2 let the TXXX frame speak
    assert set(mp3_23.fallbacks) == {"title", "album"}
    mp3_24 = by_name["02 Second.mp3"]
    assert (mp3_24.title, mp3_24.artists, mp3_24.album) == ("None of Your Business", ["Real Artist"],
                                                            "Unknown Pleasures")
    assert (mp3_24.genres, mp3_24.composers, mp3_24.fallbacks) == (["Rock"], [], [])
    flac = by_name["03 - Third.flac"]
    assert (flac.title, flac.artists, flac.album, flac.genres, flac.album_artists) == (
        "Third", [], "Folder FLAC", ["Jazz"], [])
    ogg = by_name["04 - Fourth.ogg"]
    assert (ogg.title, ogg.artists, ogg.album, ogg.genres) == ("Fourth", ["Ogg Artist"], "Folder Ogg", [])
    m4a = by_name["05 - Fifth.m4a"]
    assert m4a.tag_formats == ["mp4"]
    assert (m4a.title, m4a.artists, m4a.album, m4a.genres, m4a.album_artists) == (
        "Fifth", [], "Folder M4A", [], [])
    # placeholders never count toward the quality score
    assert "artists" not in mp3_23.found_fields and "title" not in m4a.found_fields


@pytest.mark.corpus
def test_scan_catalogs_no_placeholder_names(placeholder_library, tmp_path):
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        scan_catalog(conn, [placeholder_library])
        artists = {r[0] for r in conn.execute("SELECT name FROM artists")}
        albums = {r[0] for r in conn.execute("SELECT title FROM albums")}
        genres = {r[0] for r in conn.execute("SELECT name FROM genres")}
        titles = {r[0] for r in conn.execute("SELECT title FROM tracks")}
    finally:
        conn.close()
    assert artists == {UNKNOWN_ARTIST, "Real AA", "Real Artist", "Ogg Artist"}
    assert albums == {"Folder MP3 23", "Unknown Pleasures", "Folder FLAC", "Folder Ogg", "Folder M4A"}
    assert genres == {"Rock", "Jazz"}
    assert titles == {"First Song", "None of Your Business", "Third", "Fourth", "Fifth"}


def _album_rows(conn) -> list[tuple]:
    return [tuple(r) for r in conn.execute(
        "SELECT al.title, al.album_artist, COUNT(t.track_id) FROM albums al JOIN tracks t ON t.album_id = al.album_id "
        "GROUP BY al.album_id ORDER BY al.title, al.album_artist")]


@pytest.mark.parametrize("untagged_name", ["01 - Intro.flac", "09 - Outro.flac"])  # cataloged first or last
def test_file_without_album_artist_stays_on_its_album(tmp_path, untagged_name):
    root = tmp_path / "lib"
    folder = root / "Band X" / "Record"
    for number, name in enumerate(["02 - Two.flac", "03 - Three.flac", untagged_name], start=2):
        tagged = name != untagged_name
        write_tagged(folder / name, title=name[5:-5], artist="Band X", album="Record", tracknumber=number,
                     **({"albumartist": "Band X"} if tagged else {}))
    # the same title by a genuinely different album artist in another folder stays its own album
    write_tagged(root / "Other" / "Record" / "01 - Else.flac", title="Else", artist="Band Y", album="Record",
                 albumartist="Band Y")
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        scan_catalog(conn, [root])
        assert _album_rows(conn) == [("Record", "Band X", 3), ("Record", "Band Y", 1)]
        # a later rescan of the untagged file alone keeps it there, album id unchanged
        album_id = conn.execute("SELECT album_id FROM albums WHERE album_artist = 'Band X'").fetchone()[0]
        write_tagged(folder / untagged_name, seconds=1.5, title="Changed", artist="Band X", album="Record")
        scan_catalog(conn, [root])
        assert _album_rows(conn) == [("Record", "Band X", 3), ("Record", "Band Y", 1)]
        assert conn.execute("SELECT album_id FROM tracks WHERE title = 'Changed'").fetchone()[0] == album_id
    finally:
        conn.close()


def test_placeholder_album_artist_joins_the_tagged_album(tmp_path):
    """"<Unknown>" as album artist on one MP3 of a folder is the same as no tag: one album."""
    folder = tmp_path / "lib" / "Some Band - Live"
    write_tagged(folder / "01 - A.mp3", title="A", artist="Some Band", album="Live", albumartist="<Unknown>")
    write_tagged(folder / "02 - B.mp3", title="B", artist="Some Band", album="Live", albumartist="Some Band")
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        scan_catalog(conn, [tmp_path / "lib"])
        assert _album_rows(conn) == [("Live", "Some Band", 2)]
        assert {r[0] for r in conn.execute("SELECT name FROM artists")} == {"Some Band"}
    finally:
        conn.close()


def test_different_album_artists_in_one_folder_stay_apart(tmp_path):
    """A folder holding two same-titled albums by different album artists: the untagged file goes with the
    album crediting its own artist; the two albums stay two."""
    folder = tmp_path / "lib" / "Greatest Hits"
    write_tagged(folder / "a1.flac", title="A1", artist="Alpha", album="Greatest Hits", albumartist="Alpha")
    write_tagged(folder / "b1.flac", title="B1", artist="Beta", album="Greatest Hits", albumartist="Beta")
    write_tagged(folder / "b2.flac", title="B2", artist="Beta", album="Greatest Hits")
    write_tagged(folder / "c1.flac", title="C1", artist="Gamma", album="Greatest Hits")
    conn = open_catalog(tmp_path / "catalog.db")
    try:
        scan_catalog(conn, [tmp_path / "lib"])
        assert _album_rows(conn) == [("Greatest Hits", "Alpha", 1), ("Greatest Hits", "Beta", 2),
                                     ("Greatest Hits", "Gamma", 1)]
    finally:
        conn.close()


@pytest.fixture()
def artwork_server():
    yield from serve()


def test_remote_cover_lookups_skip_placeholder_names(tmp_path, artwork_server):
    """Untagged files are credited to "Unknown Artist": Last.fm is asked about the real artist and album only,
    never about that placeholder (it would answer with somebody else's picture)."""
    root = tmp_path / "lib"
    write_tagged(root / "Real Band" / "Real Album" / "01 - Song.flac", title="Song", artist="Real Band",
                 album="Real Album", albumartist="Real Band")
    write_tagged(root / "Unknown Artist" / "Unknown Album" / "01 - Track 01.flac", artist="<Unknown>")
    artwork_server.routes["/2.0/"] = lambda query: json_reply({"error": 6, "message": "not found"})
    data = DataDir(tmp_path / "data").ensure()
    conn = open_catalog(data.catalog_path)
    try:
        shards = scan_catalog(conn, [root])
        assert UNKNOWN_ARTIST in {r[0] for r in conn.execute("SELECT name FROM artists")}
        with fake_clock_http(seed=5) as http:
            sources = build_sources(["lastfm"], http=http, lastfm_api_key="k" * 32,
                                    lastfm_base_url=artwork_server.url("/2.0/"))
            albums = fetch_album_covers(conn, shards, data_dir=data, sources=sources, http=http)
            artists = fetch_artist_images(conn, shards, data_dir=data, sources=sources, http=http)
    finally:
        conn.close()
    asked = sorted((r.query.get("method"), r.query.get("artist"), r.query.get("album"))
                   for r in artwork_server.requests)
    assert asked == [("album.getinfo", "Real Band", "Real Album"), ("artist.getinfo", "Real Band", None)]
    assert albums.no_source == 1 and artists.selected == 1


def test_catalog_read_under_older_rules_is_reread_once(tmp_path):
    """A catalog whose tags were read before placeholders were missing values (its raw tags hold "<Unknown>",
    and no tag_rules_version is recorded) reads every file again at the next scan: the placeholder artist goes,
    track ids stay; a second scan reads nothing."""
    root = tmp_path / "lib"
    write_tagged(root / "Band" / "Album" / "01 - One.flac", title="One", artist="<Unknown>", album="Album")
    write_tagged(root / "Band" / "Album" / "02 - Two.flac", title="Two", artist="Band", album="Album")
    path = tmp_path / "catalog.db"
    conn = open_catalog(path)
    try:
        scan_catalog(conn, [root])
        track_ids = {r[0]: r[1] for r in conn.execute("SELECT path, track_id FROM tracks")}
        # what an older version stored and cataloged: the placeholder as a name
        payload = json.loads(conn.execute("SELECT payload FROM raw_tags r JOIN files f USING (file_id) "
                                          "WHERE f.path LIKE '%01 - One.flac'").fetchone()[0])
        payload["artists"] = ["<Unknown>"]
        conn.execute("UPDATE raw_tags SET payload = ? WHERE file_id = (SELECT file_id FROM files "
                     "WHERE path LIKE '%01 - One.flac')", (json.dumps(payload),))
        conn.execute("UPDATE files SET stage = 'extracted' WHERE path LIKE '%01 - One.flac'")
        catalog_shards(conn, sorted({r[0] for r in conn.execute("SELECT shard FROM files")}))
        assert "<Unknown>" in {r[0] for r in conn.execute("SELECT name FROM artists")}
        conn.execute("DELETE FROM catalog_settings WHERE name = 'tag_rules_version'")
        conn.close()
        conn = open_catalog(path)
        assert conn.execute("SELECT value FROM catalog_settings WHERE name = 'tag_rules_version'").fetchone()[0] == \
            str(TAG_RULES_VERSION)
        plan = plan_scan(conn, [root])
        inventory_shards(conn, plan.walk, plan.affected)
        assert extract_shards(conn, plan.affected, workers=1).read == 2
        catalog_shards(conn, plan.affected)
        assert {r[0] for r in conn.execute("SELECT name FROM artists")} == {UNKNOWN_ARTIST, "Band"}
        assert {r[0]: r[1] for r in conn.execute("SELECT path, track_id FROM tracks")} == track_ids
        conn.close()
        conn = open_catalog(path)
        plan = plan_scan(conn, [root])
        assert plan.affected == []  # nothing left to read
    finally:
        conn.close()
