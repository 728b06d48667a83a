"""Synthetic catalog rows for `soniquebay bench vectors` and `bench api` (bulk SQL, one transaction; never used on a
real catalog)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from soniquebay_assets.catalog import db
from soniquebay_assets.domain import embedding_text as et

_ANALYSIS_KEYS = ("bpm", "key", "mode", "energy", "danceability", "mood_happy", "mood_relaxed", "loudness_lufs",
                  "spectral_centroid", "duration_s")  # fmt: skip


def insert_library(conn: Any, tracks: Sequence[dict]) -> list[int]:
    """Albums, artists, genres, tracks and (when the table exists) analysis rows for bench track dicts."""
    has_analysis = db.table_exists(conn, "track_analysis")
    albums: dict[str, int] = {}
    artists: dict[str, int] = {}
    genres: dict[str, int] = {}
    ids = []
    with db.transaction(conn):
        for i, t in enumerate(tracks):
            if t["artist"] not in artists:
                artists[t["artist"]] = conn.execute(
                    "INSERT INTO artists(name, name_key) VALUES (?, ?) RETURNING artist_id", (t["artist"], t["artist"].casefold())
                ).fetchone()[0]
            if t["album"] not in albums:
                albums[t["album"]] = conn.execute(
                    "INSERT INTO albums(album_key, title, album_artist, folder, year) VALUES (?, ?, ?, ?, ?) RETURNING album_id",
                    (f"bench:{t['album']}", t["album"], t["artist"], f"/bench/{t['album']}", t["year"]),
                ).fetchone()[0]
                conn.execute("INSERT INTO album_artists(album_id, artist_id, position) VALUES (?, ?, 0)",
                             (albums[t["album"]], artists[t["artist"]]))
            path = f"/bench/{t['album']}/{i:06d}.flac"
            file_id = conn.execute(
                "INSERT INTO files(path, root, shard, album_folder, size, mtime_ns) VALUES (?, '/bench', ?, ?, 1, 1)"
                " RETURNING file_id",
                (path, t["shard"], t["album"]),
            ).fetchone()[0]
            track_id = conn.execute(
                "INSERT INTO tracks(file_id, path, shard, size, mtime_ns, title, artist_display, album_id, year,"
                " track_number, duration_s, format) VALUES (?, ?, ?, 1, 1, ?, ?, ?, ?, ?, ?, 'flac') RETURNING track_id",
                (file_id, path, t["shard"], t["title"], t["artist"], albums[t["album"]], t["year"],
                 t.get("number", 0) + 1, (t.get("analysis") or {}).get("duration_s")),
            ).fetchone()[0]
            conn.execute("INSERT INTO track_artists(track_id, artist_id, role, position) VALUES (?, ?, 'main', 0)",
                         (track_id, artists[t["artist"]]))  # fmt: skip
            for position, genre in enumerate(t["genres"]):
                if genre not in genres:
                    genres[genre] = conn.execute(
                        "INSERT INTO genres(name, name_key) VALUES (?, ?) RETURNING genre_id", (genre, genre.casefold())
                    ).fetchone()[0]
                conn.execute("INSERT INTO track_genres(track_id, genre_id, position) VALUES (?, ?, ?)",
                             (track_id, genres[genre], position))  # fmt: skip
            if has_analysis and t.get("analysis"):
                values = [t["analysis"].get(k) for k in _ANALYSIS_KEYS]
                camelot = et.camelot_code(t["analysis"].get("key"), t["analysis"].get("mode"))
                conn.execute(
                    f"INSERT INTO track_analysis(track_id, analysis_version, analyzed_at, status, camelot, {', '.join(_ANALYSIS_KEYS)})"
                    f" VALUES (?, 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'ok', ?, {', '.join('?' * len(_ANALYSIS_KEYS))})",
                    [track_id, camelot, *values],
                )
            ids.append(int(track_id))
    return ids


def insert_bare_tracks(conn: Any, n: int) -> None:
    """n minimal tracks with ids 1..n (one album), so KNN results resolve to paths as in a real catalog."""
    with db.transaction(conn):
        album_id = conn.execute(
            "INSERT INTO albums(album_key, title, album_artist, folder) VALUES ('bench', 'Bench', 'Bench', '/b')"
            " RETURNING album_id"
        ).fetchone()[0]
        conn.executemany(
            "INSERT INTO files(file_id, path, root, shard, album_folder, size, mtime_ns) VALUES (?, ?, '/b', '00', 'b', 1, 1)",
            [(i, f"/b/{i}.flac") for i in range(1, n + 1)],
        )
        conn.executemany(
            "INSERT INTO tracks(track_id, file_id, path, shard, size, mtime_ns, title, artist_display, album_id)"
            " VALUES (?, ?, ?, '00', 1, 1, ?, 'Bench', ?)",
            [(i, i, f"/b/{i}.flac", f"Track {i}", album_id) for i in range(1, n + 1)],
        )
    if db.dialect_of(conn) == db.POSTGRESQL:
        from soniquebay_assets.catalog import pg

        pg.sync_sequences(conn)


def insert_vectors(conn: Any, vectors_by_id: Sequence[tuple[int, bytes]]) -> None:
    """Raw vec0 rows (float32 bytes) for the KNN part of the bench; bumps the generation."""
    from soniquebay_assets.catalog import vectors

    with db.transaction(conn):
        conn.executemany(f"INSERT INTO {vectors.VEC_TABLE}(track_id, embedding) VALUES (?, ?)", vectors_by_id)
        vectors.bump_generation(conn)


@contextmanager
def _fragment_cache(conn: Any, cache_path: str) -> Iterator[None]:
    """The bench's fragment cache file attached as `fragment_cache` for the duration, its table created."""
    Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
    conn.execute("ATTACH DATABASE ? AS fragment_cache", (cache_path,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS fragment_cache.embedding_fragments ("
            " fragment_key TEXT PRIMARY KEY, model_name TEXT NOT NULL, dim INTEGER NOT NULL, embedding BLOB NOT NULL)"
        )
        yield
    finally:
        conn.execute("DETACH DATABASE fragment_cache")


def _copy_fragments(conn: Any, source: str, target: str) -> None:
    with db.transaction(conn):
        conn.execute(
            f"INSERT INTO {target}.embedding_fragments(fragment_key, model_name, dim, embedding)"
            f" SELECT fragment_key, model_name, dim, embedding FROM {source}.embedding_fragments"
            " WHERE true ON CONFLICT(fragment_key) DO NOTHING"
        )


def load_fragment_cache(conn: Any, cache_path: str) -> int:
    """Copy text-fragment embeddings kept by earlier bench runs into this catalog; returns the rows now cached."""
    if not Path(cache_path).exists():
        return 0
    with _fragment_cache(conn, cache_path):
        _copy_fragments(conn, "fragment_cache", "main")
    return conn.execute("SELECT count(*) FROM embedding_fragments").fetchone()[0]


def save_fragment_cache(conn: Any, cache_path: str) -> int:
    """Add this catalog's text-fragment embeddings to the bench cache file; returns the rows it holds."""
    with _fragment_cache(conn, cache_path):
        _copy_fragments(conn, "main", "fragment_cache")
        return conn.execute("SELECT count(*) FROM fragment_cache.embedding_fragments").fetchone()[0]
