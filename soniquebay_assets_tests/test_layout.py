import hashlib

import pytest

from soniquebay_assets.catalog.build_settings import recorded_shard_count
from soniquebay_assets.catalog.db import open_catalog
from soniquebay_assets.domain.layout import (
    SHARD_COUNT,
    SHARD_KEYS,
    album_folder_key,
    contiguous_groups,
    shard_for,
)
from soniquebay_assets_tests.audio_factory import write_tagged
from soniquebay_assets_tests.scan_helpers import scan_catalog


def test_disc_subfolders_collapse_to_album_folder():
    assert album_folder_key("Artist/Album/CD1") == "Artist/Album"
    assert album_folder_key("Artist/Album/Disc 2") == "Artist/Album"
    assert album_folder_key("Artist/Album/disk_03") == "Artist/Album"


def test_disc_suffixes_collapse_so_sibling_disc_folders_match():
    one = album_folder_key("Various Artists - Sampler (Disc 1)")
    two = album_folder_key("Various Artists - Sampler (Disc 2)")
    assert one == two == "Various Artists - Sampler"
    assert album_folder_key("Album [CD2]") == "Album"


def test_ordinary_folders_are_kept():
    assert album_folder_key("Artist/Discovery") == "Artist/Discovery"
    assert album_folder_key("Artist/CD") == "Artist/CD"
    assert album_folder_key("") == ""


def test_shards_are_stable_bounded_and_case_insensitive():
    assert len(SHARD_KEYS) == SHARD_COUNT == 128
    assert shard_for("/music/Artist/Album") == shard_for("/music/artist/album")
    assert shard_for("/music/Artist/Album") in SHARD_KEYS
    # Fixed value: changing the hash would reshuffle every user's partitions.
    assert shard_for("/music/Artist/Album") == "50"
    spread = {shard_for(f"/music/a{i}/b") for i in range(2000)}
    assert len(spread) == SHARD_COUNT  # 2000 folders reach every shard


def _first_hash_byte(folder: str) -> int:
    """Computed here from the definition (blake2b, 8-byte digest, case-folded UTF-8), not with the product code."""
    return hashlib.blake2b(folder.casefold().encode("utf-8"), digest_size=8).digest()[0]


# folder -> (first byte of its hash, pinned shard): both sides of 0x80, so a change of the shard count (which
# only moves folders whose first byte is >= the count) or of the hash fails here.
PINS = {
    "/music/Artist/Album": (0x50, "50"),
    "/music/Various Artists - Sampler": (0x15, "15"),
    "/music/a3/b": (0x08, "08"),
    "/music/Artist/Album 2": (0xBC, "3c"),
    "/srv/media/Bj\u00f6rk/Homogenic": (0xCC, "4c"),
    "/music/a4/b": (0x94, "14"),
}


@pytest.mark.parametrize("folder", PINS)
def test_shard_pins_on_both_sides_of_0x80(folder):
    first_byte, shard = PINS[folder]
    assert _first_hash_byte(folder) == first_byte
    assert shard_for(folder) == shard == f"{first_byte % 128:02x}"
    assert sum(b >= 0x80 for b, _ in PINS.values()) == 3


def test_catalog_built_with_another_shard_count_is_resharded(tmp_path):
    """A catalog whose files were sharded for 256 partitions (before the count was recorded, or recorded as
    256) is re-sharded on open: every file, track and error follows its album folder, nothing is re-read."""
    root = tmp_path / "lib"
    folders = [f"Artist {i}/Album {i}" for i in range(12)]
    for folder in folders:
        write_tagged(root / folder / "01 - Song.flac", title="Song", artist=folder.split("/")[0], album=folder)
    path = tmp_path / "catalog.db"
    conn = open_catalog(path)
    try:
        scan_catalog(conn, [root])
        assert recorded_shard_count(conn) == SHARD_COUNT
        expected = {r[0]: r[1] for r in conn.execute("SELECT path, shard FROM files")}
        old = {p: f"{_first_hash_byte(str(root) + '/' + p[len(str(root)) + 1:].rsplit('/', 1)[0]):02x}"
               for p in expected}
        assert any(int(s, 16) >= 0x80 for s in old.values())  # the library really has folders above 0x7f
        for recorded in (None, "256"):
            conn.executemany("UPDATE files SET shard = ? WHERE path = ?", [(s, p) for p, s in old.items()])
            conn.execute("UPDATE tracks SET shard = (SELECT shard FROM files f WHERE f.file_id = tracks.file_id)")
            conn.execute("DELETE FROM catalog_settings WHERE name = 'shard_count'")
            if recorded:
                conn.execute("INSERT INTO catalog_settings(name, value) VALUES ('shard_count', ?)", (recorded,))
            conn.close()
            conn = open_catalog(path)
            assert recorded_shard_count(conn) == SHARD_COUNT
            assert {r[0]: r[1] for r in conn.execute("SELECT path, shard FROM files")} == expected
            assert {r[0]: r[1] for r in conn.execute("SELECT path, shard FROM tracks")} == expected
            # the deferred work and the next scan follow the new shards; no file is re-read
            stale = conn.execute("SELECT COUNT(*) FROM deferred_work WHERE shard NOT IN "
                                 f"({','.join('?' * len(SHARD_KEYS))})", SHARD_KEYS).fetchone()[0]
            assert stale == 0
            files_before = {r[0] for r in conn.execute("SELECT file_id FROM files")}
            from soniquebay_assets.pipeline.scan import extract_shards, inventory_shards, plan_scan

            plan = plan_scan(conn, [root])
            assert plan.affected == sorted(set(expected.values()))  # digests dropped: every shard re-inventoried
            inventory_shards(conn, plan.walk, plan.affected)
            assert extract_shards(conn, plan.affected, workers=1).read == 0
            assert {r[0] for r in conn.execute("SELECT file_id FROM files")} == files_before
    finally:
        conn.close()


def test_contiguous_groups_split_at_every_gap():
    assert contiguous_groups([]) == []
    assert contiguous_groups(["0c", "0a", "0b", "70", "0a", "7f"]) == [["0a", "0b", "0c"], ["70"], ["7f"]]
