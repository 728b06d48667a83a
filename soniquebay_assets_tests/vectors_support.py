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


def new_catalog(path: Path) -> Any:
    return db.open_catalog(path)


def _entity(conn: Any, table: str, key_column: str, key: str, values: dict) -> int:
    row = conn.execute(f"SELECT rowid FROM {table} WHERE {key_column} = ?", (key,)).fetchone()
    if row:
        return int(row[0])
    columns = [key_column, *values]
    marks = ",".join("?" * len(columns))
    cursor = conn.execute(f"INSERT INTO {table}({','.join(columns)}) VALUES ({marks})", [key, *values.values()])
    return int(cursor.lastrowid)


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
            "INSERT INTO files(path, root, shard, album_folder, size, mtime_ns) VALUES (?, '/lib', ?, ?, 1, 1)",
            (path, shard, album),
        ).lastrowid
        track_id = conn.execute(
            "INSERT INTO tracks(file_id, path, shard, size, mtime_ns, title, artist_display, album_id, year)"
            " VALUES (?, ?, ?, 1, 1, ?, ?, ?, ?)",
            (file_id, path, shard, title, " & ".join(artists), album_id, year),
        ).lastrowid
        for position, name in enumerate(artists):
            artist_id = _entity(conn, "artists", "name_key", name.casefold(), {"name": name})
            conn.execute(
                "INSERT OR IGNORE INTO track_artists(track_id, artist_id, role, position) VALUES (?, ?, 'main', ?)",
                (track_id, artist_id, position),
            )
        for position, name in enumerate(genres):
            genre_id = _entity(conn, "genres", "name_key", name.casefold(), {"name": name})
            conn.execute(
                "INSERT OR IGNORE INTO track_genres(track_id, genre_id, position) VALUES (?, ?, ?)",
                (track_id, genre_id, position),
            )
    return int(track_id)


def set_title(conn: Any, track_id: int, title: str) -> None:
    with db.transaction(conn):
        conn.execute("UPDATE tracks SET title = ? WHERE track_id = ?", (title, track_id))


def add_analysis(conn: Any, track_id: int, **features: Any) -> None:
    """Write (or replace) an analysis row; creates track_analysis when the enrichment migration is absent."""
    with db.transaction(conn):
        conn.execute(_ANALYSIS_FALLBACK)
        present = {row[1] for row in conn.execute("PRAGMA table_info(track_analysis)")}
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
