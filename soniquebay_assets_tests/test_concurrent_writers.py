"""Several writer processes on one catalog at once (SQLite file or PostgreSQL): nothing lost, nothing twice."""

from __future__ import annotations

import multiprocessing

import pytest

from soniquebay_assets.catalog import deferred
from soniquebay_assets.catalog.db import open_catalog

pytestmark = pytest.mark.both_backends

ALBUMS = 12
TRACKS_PER_ALBUM = 2


def _write_shards(target: str, library: str, shards: list[str], out) -> None:
    """One writer: inventory, tags and catalog rows for its shards, plus claims of deferred work."""
    from soniquebay_assets.library.walker import walk_library
    from soniquebay_assets.pipeline.scan import catalog_shards, extract_shards, inventory_shards

    try:
        conn = open_catalog(target)
        walk = walk_library([library])
        inventory_shards(conn, walk, shards)
        extract_shards(conn, shards, workers=1)
        catalog_shards(conn, shards)
        claimed = [item.work_id for item in deferred.claim(conn, "vectors", f"w{shards[0]}", limit=5)]
        conn.close()
        out.put(("ok", claimed))
    except BaseException as exc:  # reported to the test, which fails naming it
        out.put(("error", repr(exc)))


def test_overlapping_writer_processes_never_lose_or_duplicate_rows(tmp_path, make_audio, catalog_target):
    from soniquebay_assets.library.walker import walk_library

    library = tmp_path / "lib"
    for a in range(ALBUMS):
        for n in range(1, TRACKS_PER_ALBUM + 1):
            # every album shares one artist and one genre: all writers upsert the same rows at the same time
            make_audio(library / f"Band {a}" / f"Album {a}" / f"{n:02d}.flac", seconds=0.2, title=f"Song {a}.{n}",
                       artist=["Shared Artist", f"Band {a}"], albumartist=f"Band {a}", album=f"Album {a}",
                       tracknumber=n, genre=["Rock", f"Style {a % 3}"])
    open_catalog(catalog_target).close()  # migrated once, as a deployment does before starting workers
    shards = sorted({f.shard for f in walk_library([library]).files})
    assert len(shards) >= 4
    # three writers, each shard written by two of them
    thirds = [shards[i::3] for i in range(3)]
    assignments = [sorted(set(thirds[i]) | set(thirds[(i + 1) % 3])) for i in range(3)]
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_write_shards, args=(str(catalog_target), str(library), part, out))
             for part in assignments]
    for p in procs:
        p.start()
    reports = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(status == "ok" for status, _ in reports), reports
    claimed = [wid for _, ids in reports for wid in ids]
    assert len(claimed) == len(set(claimed))  # no deferred item handed to two writers

    conn = open_catalog(catalog_target)
    try:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        expected = ALBUMS * TRACKS_PER_ALBUM
        assert one("SELECT COUNT(*) FROM files") == expected
        assert one("SELECT COUNT(*) FROM tracks") == expected
        assert one("SELECT COUNT(DISTINCT path) FROM tracks") == expected
        assert one("SELECT COUNT(*) FROM albums") == ALBUMS
        names = [r[0] for r in conn.execute("SELECT name FROM artists ORDER BY name")]
        assert names == sorted(["Shared Artist", *(f"Band {a}" for a in range(ALBUMS))])
        assert [r[0] for r in conn.execute("SELECT name FROM genres ORDER BY name")] == \
            ["Rock", "Style 0", "Style 1", "Style 2"]
        assert one("SELECT COUNT(*) FROM track_artists WHERE role = 'main'") == 2 * expected
        assert one("SELECT COUNT(*) FROM track_genres") == 2 * expected
        assert one("SELECT COUNT(*) FROM files WHERE stage != 'cataloged'") == 0
        assert one("SELECT COUNT(*) FROM deferred_work WHERE kind = 'vectors'") == expected
        assert one("SELECT COUNT(*) FROM deferred_work WHERE kind = 'covers'") == ALBUMS
    finally:
        conn.close()
