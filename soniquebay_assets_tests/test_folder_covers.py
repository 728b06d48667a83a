"""Folder images under their common names (and a folder's only image) and an ID3v2.3 picture stored with
unsynchronisation become album covers: real images and audio files, cataloged by the scan chain, covers fetched
by the cover stage with the local sources only."""

from __future__ import annotations

import hashlib
import io
import struct
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from mutagen.id3._util import unsynch
from PIL import Image

from soniquebay_assets.artwork.sources import build_sources, read_embedded_pictures
from soniquebay_assets.catalog.db import open_catalog
from soniquebay_assets.domain.cover_choice import album_image_rank, match_album_images
from soniquebay_assets.domain.tags import read_tags
from soniquebay_assets.pipeline.covers import fetch_album_covers
from soniquebay_assets.settings import DataDir
from soniquebay_assets_tests.audio_factory import write_audio, write_tagged
from soniquebay_assets_tests.scan_helpers import scan_catalog

GUID = "{4D2E1A3B-1234-4321-ABCD-0123456789AB}"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _image(size: int, fmt: str = "JPEG", seed: int = 0) -> bytes:
    """A noisy picture (noise makes JPEG bytes rich in 0xFF, which unsynchronisation rewrites)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def test_album_image_names_ranked():
    names = ["Folder.JPG", "back.jpg", "cover.png", "FRONT.jpeg", "album.webp", "cover.gif", "notes.txt"]
    assert match_album_images(names) == ["cover.png", "Folder.JPG", "FRONT.jpeg", "album.webp"]
    assert match_album_images(["AlbumArtSmall.jpg", f"AlbumArt_{GUID}_Small.jpg", f"AlbumArt_{GUID}_Large.jpg",
                               "albumcover.PNG"]) == [
        "albumcover.PNG", f"AlbumArt_{GUID}_Large.jpg", f"AlbumArt_{GUID}_Small.jpg", "AlbumArtSmall.jpg"]
    assert match_album_images(["Album_Art.jpg", "ARTWORK.webp", "Art.png"]) == ["Album_Art.jpg", "Art.png",
                                                                               "ARTWORK.webp"]
    assert match_album_images(["The Record.jpg", "Band - The Record.png"], "The Record", "Band") == [
        "Band - The Record.png", "The Record.jpg"]
    assert match_album_images(["Scan - Front.jpg", "back cover.jpg", "CD.jpg"]) == ["Scan - Front.jpg"]
    # the folder's only image counts, unless its name says it is another side of the package
    assert match_album_images(["IMG_0042.webp", "01.flac"]) == ["IMG_0042.webp"]
    assert match_album_images(["Back.jpg"]) == [] and match_album_images(["a.jpg", "b.jpg"]) == []
    assert match_album_images(["IMG_0042.webp"], only_image=False) == []
    assert album_image_rank("covers.txt") is None and album_image_rank("discover.jpg") is None


def _unsynchronised_v23_mp3(path: Path, picture: bytes) -> None:
    """An MP3 whose ID3v2.3 tag is written with the unsynchronisation scheme (header flag 0x80): every 0xFF
    followed by 0x00 or a byte >= 0xE0 gets a 0x00 inserted, as old taggers (and some iTunes versions) wrote."""
    write_audio(path)
    audio = path.read_bytes()

    def frame(frame_id: bytes, body: bytes) -> bytes:
        return frame_id + struct.pack(">I", len(body)) + b"\x00\x00" + body

    frames = (frame(b"TIT2", b"\x00Unsynced") + frame(b"TALB", b"\x00Unsync Album")
              + frame(b"TPE1", b"\x00Old Tagger")
              + frame(b"APIC", b"\x00image/jpeg\x00\x03\x00" + picture))
    encoded = unsynch.encode(frames)
    assert encoded != frames  # the picture really needed unsynchronisation
    size = len(encoded)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    path.write_bytes(b"ID3\x03\x00\x80" + syncsafe + encoded + audio)


def test_unsynchronised_id3v23_picture_is_decoded(tmp_path):
    picture = _image(64, seed=7)
    path = tmp_path / "Unsync Album" / "01 - Unsynced.mp3"
    _unsynchronised_v23_mp3(path, picture)
    record = read_tags(path)
    assert (record.title, record.album, record.tag_formats) == ("Unsynced", "Unsync Album", ["id3v2.3"])
    assert record.has_embedded_picture and record.audio_ok
    [candidate] = read_embedded_pictures(str(path))
    assert candidate.is_front and candidate.data == picture


# album folder -> (files to write: name -> image size or None for audio, the image expected as cover)
CASES = {
    "AlbumCover PNG": ({"albumcover.png": 301}, "albumcover.png"),
    "Windows Media Player": ({f"AlbumArt_{GUID}_Large.jpg": 302, f"AlbumArt_{GUID}_Small.jpg": 75,
                              "AlbumArtSmall.jpg": 76}, f"AlbumArt_{GUID}_Large.jpg"),
    "Named After Album": ({"Named After Album.jpg": 303, "back.jpg": 304}, "Named After Album.jpg"),
    "Only Image": ({"IMG_0042.webp": 305}, "IMG_0042.webp"),
    "Upper Case": ({"ALBUMART.JPEG": 306, "booklet.jpg": 307}, "ALBUMART.JPEG"),
    "Scans Subfolder": ({"Scans/Front.JPG": 308, "Scans/Back.JPG": 309}, "Scans/Front.JPG"),
    "Only Back": ({"Back.jpg": 310}, None),
}


@pytest.fixture()
def cover_library(tmp_path):
    root = tmp_path / "lib"
    for folder, (files, _) in CASES.items():
        for number in (1, 2):
            write_tagged(root / folder / f"0{number} - Song.flac", title=f"Song {number}", artist="Band",
                         album=folder, albumartist="Band")
        for seed, (name, size) in enumerate(files.items()):
            target = root / folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            fmt = {".png": "PNG", ".webp": "WEBP"}.get(target.suffix.lower(), "JPEG")
            target.write_bytes(_image(size, fmt, seed))
    _unsynchronised_v23_mp3(root / "Unsync Album" / "01 - Unsynced.mp3", _image(311, seed=99))
    return root


def test_cover_stage_takes_common_folder_names_and_unsynchronised_pictures(cover_library, tmp_path):
    data = DataDir(tmp_path / "data").ensure()
    conn = open_catalog(data.catalog_path)
    try:
        shards = scan_catalog(conn, [cover_library])
        stats = fetch_album_covers(conn, shards, data_dir=data, sources=build_sources(["embedded", "folder"]),
                                   now=NOW)
        rows = {title: (source, origin, width) for title, source, origin, width in conn.execute(
            "SELECT al.title, c.source, c.origin, c.width FROM albums al "
            "LEFT JOIN covers c ON c.entity_type = 'album' AND c.entity_id = al.album_id")}
        stored = conn.execute("SELECT c.path FROM covers c JOIN albums al ON al.album_id = c.entity_id "
                              "WHERE c.entity_type = 'album' AND al.title = 'Unsync Album'").fetchone()[0]
    finally:
        conn.close()
    for folder, (files, expected) in CASES.items():
        if expected is None:
            assert rows[folder] == (None, None, None), folder
        else:
            assert rows[folder] == ("folder", str(cover_library / folder / expected), files[expected]), folder
    source, origin, width = rows["Unsync Album"]
    assert (source, width) == ("embedded", 311) and origin.endswith("01 - Unsynced.mp3#APIC")
    original = _image(311, seed=99)
    stored_bytes = (data.root / "covers" / stored).read_bytes()
    assert hashlib.sha256(stored_bytes).hexdigest() == hashlib.sha256(original).hexdigest()
    assert (stats.found, stats.misses) == (len(CASES), 1)
