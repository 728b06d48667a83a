"""The scan chain materialized with a test instance on real audio files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from soniquebay_assets.settings import DataDir
from soniquebay_assets_tests.audio_factory import write_audio
from soniquebay_assets_tests.scan_helpers import (
    catalog,
    errors_by_path,
    materialize_scan,
    metadata_of,
    test_instance,
    tracks_by_title,
)

pytestmark = pytest.mark.both_backends


@pytest.fixture()
def instance(tmp_path):
    with test_instance(tmp_path) as inst:
        yield inst


@pytest.fixture()
def library(tmp_path: Path, make_audio) -> Path:
    root = tmp_path / "music"
    make_audio(root / "Alpha/First Light (2001)/01 - Dawn.flac", title="Dawn", artist="Alpha", album="First Light",
               albumartist="Alpha", tracknumber="1/2", date="2001", genre="Rock; Indie")
    make_audio(root / "Alpha/First Light (2001)/02 - Noon.flac", title="Noon", artist="Alpha feat. Beta",
               album="First Light", albumartist="Alpha", tracknumber="2/2", date="2001", genre="Rock")
    # A compilation over two disc folders, no MusicBrainz id: still one album.
    make_audio(root / "Various/Sampler (Disc 1)/01 Song A.mp3", title="Song A", artist="Gamma", album="Sampler",
               albumartist="Various Artists", tracknumber="1", discnumber="1/2", compilation="1")
    make_audio(root / "Various/Sampler (Disc 2)/01 Song B.mp3", title="Song B", artist="Delta", album="Sampler",
               albumartist="Various Artists", tracknumber="1", discnumber="2/2", compilation="1")
    # Two albums with the same title by different artists stay two.
    make_audio(root / "Epsilon/Greatest Hits/01 Hit E.ogg", title="Hit E", artist="Epsilon", album="Greatest Hits",
               albumartist="Epsilon")
    make_audio(root / "Zeta/Greatest Hits/01 Hit Z.ogg", title="Hit Z", artist="Zeta", album="Greatest Hits",
               albumartist="Zeta")
    # A multi-artist album without album artist tags: one album.
    make_audio(root / "Split EP/01 Part One.wav", title="Part One", artist="Eta", album="Split EP")
    make_audio(root / "Split EP/02 Part Two.wav", title="Part Two", artist="Theta", album="Split EP")
    # Untagged: title from the file name, album from the folder, both recorded as fallbacks.
    write_audio(root / "Loose Folder/07 - Untitled Thing.flac")
    return root


def test_first_scan_builds_a_correct_catalog(instance, library, data_dir):
    result = materialize_scan(instance, library, data_dir)
    inventory = metadata_of(result, "file_inventory")
    assert inventory["new"] == 9 and inventory["deleted"] == 0
    assert inventory["host"] == metadata_of(result, "catalog_entities")["host"] and inventory["host"]
    tracks = tracks_by_title(data_dir)
    assert len(tracks) == 9
    assert tracks["Noon"]["artists"] == ["Alpha"]
    conn = catalog(data_dir)
    roles = dict(conn.execute(
        "SELECT ar.name, ta.role FROM track_artists ta JOIN artists ar USING (artist_id) JOIN tracks t USING (track_id) "
        "WHERE t.title = 'Noon'").fetchall())
    assert roles == {"Alpha": "main", "Beta": "featured"}
    assert tracks["Dawn"]["genres"] == ["Rock", "Indie"]
    assert tracks["Song A"]["album_id"] == tracks["Song B"]["album_id"]
    assert tracks["Song A"]["album_artist"] == "Various Artists" and tracks["Song A"]["compilation"] is True
    assert tracks["Hit E"]["album_id"] != tracks["Hit Z"]["album_id"]
    assert tracks["Part One"]["album_id"] == tracks["Part Two"]["album_id"]
    assert tracks["Part One"]["album_artist"] == "Various Artists"
    untitled = tracks["Untitled Thing"]
    assert untitled["title_from_fallback"] is True and untitled["album"] == "Loose Folder"
    assert untitled["quality_score"] < tracks["Dawn"]["quality_score"]
    assert conn.execute("SELECT COUNT(*) FROM albums").fetchone()[0] == 6
    conn.close()
    check_results = {r.check_name: r.passed for r in result.get_asset_check_evaluations()}
    assert check_results["no_duplicate_paths"] and check_results["tracks_have_album_and_artist"]


@pytest.mark.slow
def test_rerunning_partitions_in_any_order_never_duplicates(instance, library, data_dir):
    materialize_scan(instance, library, data_dir)
    conn = catalog(data_dir)
    before = [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("tracks", "albums", "artists", "genres", "track_artists", "track_genres")]
    shards = sorted({r[0] for r in conn.execute("SELECT shard FROM files")}, reverse=True)
    conn.execute("UPDATE files SET stage = 'inventoried'")  # force every file through the chain again
    conn.close()
    for shard in shards:  # one shard at a time, in reverse order
        materialize_scan(instance, library, data_dir, shards=[shard])
    conn = catalog(data_dir)
    after = [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
             for t in ("tracks", "albums", "artists", "genres", "track_artists", "track_genres")]
    conn.close()
    assert after == before


@pytest.mark.slow
def test_unchanged_rescan_reads_no_tags(instance, library, data_dir):
    materialize_scan(instance, library, data_dir)
    result = materialize_scan(instance, library, data_dir)
    assert metadata_of(result, "raw_metadata")["files_read"] == 0
    assert metadata_of(result, "file_inventory")["unchanged"] == 9


@pytest.mark.slow
def test_changed_deleted_and_moved_files(instance, library, data_dir, make_audio):
    materialize_scan(instance, library, data_dir)
    before = tracks_by_title(data_dir)
    # changed: new tags (size/mtime change) -> re-read, same track row
    make_audio(library / "Alpha/First Light (2001)/01 - Dawn.flac", seconds=1.5, title="Dawn (Remaster)",
               artist="Alpha", album="First Light", albumartist="Alpha", tracknumber="1/2")
    # deleted
    (library / "Zeta/Greatest Hits/01 Hit Z.ogg").unlink()
    # moved and renamed, content unchanged -> keeps its track id
    (library / "Moved").mkdir()
    shutil.move(str(library / "Epsilon/Greatest Hits/01 Hit E.ogg"), str(library / "Moved/renamed.ogg"))
    result = materialize_scan(instance, library, data_dir)
    inventory = metadata_of(result, "file_inventory")
    assert (inventory["changed"], inventory["deleted"], inventory["moved"], inventory["new"]) == (1, 1, 1, 0)
    assert str(library / "Zeta/Greatest Hits/01 Hit Z.ogg") in inventory["deleted_paths"]
    assert metadata_of(result, "raw_metadata")["files_read"] == 1
    after = tracks_by_title(data_dir)
    assert "Hit Z" not in after
    assert after["Dawn (Remaster)"]["track_id"] == before["Dawn"]["track_id"]
    assert after["Hit E"]["track_id"] == before["Hit E"]["track_id"]
    assert after["Hit E"]["path"] == str(library / "Moved/renamed.ogg")
    conn = catalog(data_dir)
    assert conn.execute("SELECT COUNT(*) FROM artists WHERE name = 'Zeta'").fetchone()[0] == 0  # orphan removed
    conn.close()


@pytest.mark.slow
def test_unavailable_root_keeps_its_tracks(instance, library, data_dir, tmp_path):
    materialize_scan(instance, library, data_dir)
    hidden = tmp_path / "unmounted"
    library.rename(hidden)
    result = materialize_scan(instance, library, data_dir)
    assert metadata_of(result, "file_inventory")["deleted"] == 0
    assert len(tracks_by_title(data_dir)) == 9
    assert errors_by_path(data_dir)[str(library)]["reason"] == "library root unavailable"


def test_bad_files_are_recorded_and_the_rest_cataloged(instance, tmp_path, data_dir, make_audio):
    root = tmp_path / "music"
    make_audio(root / "Good/Album/01 Fine.flac", title="Fine", artist="Good", album="Album")
    bad = root / "Bad"
    bad.mkdir(parents=True)
    (bad / "zero.mp3").write_bytes(b"")
    (bad / "notes.mp3").write_text("this is a text file, not audio\n" * 20)
    good_flac = (root / "Good/Album/01 Fine.flac").read_bytes()
    (bad / "truncated.flac").write_bytes(good_flac[:100])
    os.symlink(bad / "nowhere.flac", bad / "broken.flac")
    outside = tmp_path / "outside"
    write_audio(outside / "secret.flac")
    os.symlink(outside / "secret.flac", bad / "escape.flac")
    os.symlink(bad / "loop", bad / "loop")
    os.symlink(root, bad / "back-to-root")
    weird = os.fsencode(str(bad)) + b"/caf\xe9-latin1.flac"
    shutil.copyfile(root / "Good/Album/01 Fine.flac", weird)
    _write_long_wav(bad / "one-hour.wav", seconds=3600)
    result = materialize_scan(instance, root, data_dir)
    errors = errors_by_path(data_dir)
    reasons = {Path(p).name: e["reason"] for p, e in errors.items()}
    assert reasons["zero.mp3"] == "empty file"
    assert reasons["notes.mp3"] == "not an audio file"
    assert reasons["truncated.flac"] in {"corrupt or truncated", "not an audio file"}
    assert reasons["broken.flac"] == "broken symlink"
    assert reasons["escape.flac"] == "symlink outside library roots"
    assert reasons["loop"] == "symlink loop"
    assert reasons["back-to-root"] == "symlink loop"
    assert reasons["caf\\xe9-latin1.flac"] == "file name is not valid UTF-8"
    assert all(e["detail"] for e in errors.values())
    tracks = tracks_by_title(data_dir)
    assert "Fine" in tracks
    assert tracks["one-hour"]["duration_s"] == pytest.approx(3600, rel=0.01)
    non_utf8 = [p for p in _all_paths(data_dir) if "\\xe9" in p]
    assert len(non_utf8) == 1  # cataloged under an escaped name, with a warning
    assert metadata_of(result, "raw_metadata")["errored"] >= 3


def test_file_vanishing_between_walk_and_read(instance, tmp_path, data_dir, make_audio):
    from soniquebay_assets.catalog.db import open_catalog
    from soniquebay_assets.library.walker import walk_library
    from soniquebay_assets.pipeline.scan import extract_shards, inventory_shards

    root = tmp_path / "music"
    make_audio(root / "A/B/01 Here.flac", title="Here", artist="A", album="B")
    make_audio(root / "A/B/02 Gone.flac", title="Gone", artist="A", album="B")
    conn = open_catalog(DataDir(data_dir).catalog_url)
    walk = walk_library([root])
    shards = sorted({f.shard for f in walk.files})
    inventory_shards(conn, walk, shards)
    (root / "A/B/02 Gone.flac").unlink()
    stats = extract_shards(conn, shards)
    assert stats.ok == 1 and stats.errors_by_reason == {"file vanished": 1}
    conn.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges to user nobody")
def test_unreadable_file_is_recorded_with_permission_reason(make_audio):
    import multiprocessing
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="soniquebay-perm-"))  # pytest's tmp root is closed to other users
    try:
        os.chmod(folder, 0o755)
        path = make_audio(folder / "01 Locked.flac", title="Locked")
        os.chmod(path, 0)
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_read_as_nobody, args=(str(path), path.stat().st_size, queue))
        child.start()
        result = queue.get(timeout=60)
        child.join(10)
        assert not result.ok and result.reason == "permission denied", result
        assert "read" in result.detail  # the detail says what to do
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _read_as_nobody(path: str, size: int, queue) -> None:
    import pwd

    from soniquebay_assets.pipeline.tag_worker import read_file

    nobody = pwd.getpwnam("nobody")
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
    queue.put(read_file((1, path, None, os.path.dirname(path), size)))


def _write_long_wav(path: Path, seconds: int, sr: int = 8000) -> None:
    """A real 8 kHz mono 16-bit WAV of silence, written sparse so it costs no disk or memory."""
    import struct

    data_bytes = seconds * sr * 2
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16)
    header += b"data" + struct.pack("<I", data_bytes)
    with open(path, "wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + data_bytes)


def _all_paths(data_dir: Path) -> list[str]:
    conn = catalog(data_dir)
    try:
        return [r[0] for r in conn.execute("SELECT path FROM tracks")]
    finally:
        conn.close()
