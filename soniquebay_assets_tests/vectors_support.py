"""Helpers for the vector tests: a real catalog filled through SQL, analysis rows, the real model once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from soniquebay_assets.catalog import db

# Same columns as the enrichment migration's track_analysis; created only when that migration is absent.
_ANALYSIS_FALLBACK = """
CREATE TABLE IF NOT EXISTS track_analysis (
    track_id INTEGER PRIMARY KEY REFERENCES tracks(track_id) ON DELETE CASCADE,
    analysis_version INTEGER NOT NULL DEFAULT 1, status TEXT NOT NULL DEFAULT 'ok',
    bpm REAL, bpm_confidence REAL, key TEXT, mode TEXT, camelot TEXT, loudness_lufs REAL, energy REAL,
    danceability REAL, acousticness REAL, instrumentalness REAL, mood_happy REAL, mood_sad REAL,
    mood_aggressive REAL, mood_relaxed REAL, mood_party REAL, spectral_centroid REAL, spectral_rolloff REAL,
    spectral_flatness REAL, zero_crossing_rate REAL, duration_s REAL
)
"""


def new_catalog(path: Path | str) -> Any:
    return db.open_catalog(path)


def _entity(conn: Any, table: str, key_column: str, key: str, values: dict) -> int:
    id_column = {"albums": "album_id", "artists": "artist_id", "genres": "genre_id"}[table]
    row = conn.execute(f"SELECT {id_column} FROM {table} WHERE {key_column} = ?", (key,)).fetchone()
    if row:
        return int(row[0])
    columns = [key_column, *values]
    marks = ",".join("?" * len(columns))
    return int(conn.execute(f"INSERT INTO {table}({','.join(columns)}) VALUES ({marks}) RETURNING {id_column}",
                            [key, *values.values()]).fetchone()[0])


def add_track(
    conn: Any,
    path: str,
    *,
    title: str,
    artists: list[str] | tuple[str, ...] = (),
    album: str = "",
    album_artist: str | None = None,
    genres: list[str] | tuple[str, ...] = (),
    year: int | None = None,
    shard: str = "00",
) -> int:
    """Insert one track with its album, artists and genres; returns the track id."""
    with db.transaction(conn):
        album_artist = album_artist if album_artist is not None else (artists[0] if artists else "")
        album_id = _entity(
            conn, "albums", "album_key", f"tag:{album_artist}|{album}|{shard}",
            {"title": album, "album_artist": album_artist, "folder": f"/lib/{album}", "year": year},
        )  # fmt: skip
        file_id = conn.execute(
            "INSERT INTO files(path, root, shard, album_folder, size, mtime_ns) VALUES (?, '/lib', ?, ?, 1, 1)"
            " RETURNING file_id",
            (path, shard, album),
        ).fetchone()[0]
        track_id = conn.execute(
            "INSERT INTO tracks(file_id, path, shard, size, mtime_ns, title, artist_display, album_id, year)"
            " VALUES (?, ?, ?, 1, 1, ?, ?, ?, ?) RETURNING track_id",
            (file_id, path, shard, title, " & ".join(artists), album_id, year),
        ).fetchone()[0]
        for position, name in enumerate(artists):
            artist_id = _entity(conn, "artists", "name_key", name.casefold(), {"name": name})
            conn.execute(
                "INSERT INTO track_artists(track_id, artist_id, role, position) VALUES (?, ?, 'main', ?)"
                " ON CONFLICT DO NOTHING",
                (track_id, artist_id, position),
            )
        for position, name in enumerate(genres):
            genre_id = _entity(conn, "genres", "name_key", name.casefold(), {"name": name})
            conn.execute(
                "INSERT INTO track_genres(track_id, genre_id, position) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (track_id, genre_id, position),
            )
    return int(track_id)


def set_title(conn: Any, track_id: int, title: str) -> None:
    with db.transaction(conn):
        conn.execute("UPDATE tracks SET title = ? WHERE track_id = ?", (title, track_id))


def add_analysis(conn: Any, track_id: int, **features: Any) -> None:
    """Write (or replace) an analysis row; creates track_analysis when the enrichment migration is absent."""
    with db.transaction(conn):
        if not db.table_exists(conn, "track_analysis"):
            conn.execute(_ANALYSIS_FALLBACK)
        present = set(db.table_columns(conn, "track_analysis"))
        values = {"track_id": track_id, **{k: v for k, v in features.items() if k in present}}
        if "status" in present and "status" not in values:
            values["status"] = "ok"
        if "analysis_version" in present and "analysis_version" not in values:
            values["analysis_version"] = 1
        if "analyzed_at" in present and "analyzed_at" not in values:
            values["analyzed_at"] = "2026-01-01T00:00:00.000Z"
        conn.execute("DELETE FROM track_analysis WHERE track_id = ?", (track_id,))
        columns = list(values)
        conn.execute(
            f"INSERT INTO track_analysis({','.join(columns)}) VALUES ({','.join('?' * len(columns))})",
            list(values.values()),
        )


@pytest.fixture(scope="session")
def text_model():
    """The real default model, loaded once for the whole test session (10-15 s)."""
    from soniquebay_assets.library import embedder

    return embedder.load_model()


def expected_driver_name() -> str:
    """What vector metadata reports as the driver: the sqlite module, or 'postgresql' for a server catalog."""
    import os

    return "postgresql" if os.environ.get("SONIQUEBAY_CATALOG_URL", "").startswith("postgres") \
        else db.detect_driver().name
