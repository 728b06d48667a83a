"""Playlists in the catalog: the library as arrays for generation (cached per process while the catalog is
unchanged), saved playlist definitions, their last entries, push outcomes and the song ids servers gave."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from soniquebay_assets.catalog import analysis, db, external, vector_search, vectors
from soniquebay_assets.domain import embedding_text as et
from soniquebay_assets.domain import playlists as pl
from soniquebay_assets.domain.albums import UNKNOWN_ARTIST


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ------------------------------------------------------------------------------------------ catalog state

# What a playlist is made from: tracks (tags, paths), their analysis, vectors, album matches, recording ids,
# normalized genres. Each part is a count and the newest change stamp, so any insert, update or delete moves it.
_STATE_PARTS = (
    "SELECT COUNT(*), MAX(track_id), MAX(updated_at) FROM tracks",
    "SELECT COUNT(*), MAX(analyzed_at), NULL FROM track_analysis",
    "SELECT COUNT(*), MAX(updated_at), NULL FROM album_matches",
    "SELECT COUNT(*), MAX(fetched_at), NULL FROM track_external",
    "SELECT COUNT(*), NULL, NULL FROM track_genres_normalized",
)


def catalog_state(conn: Any) -> str:
    """A short digest of everything playlists are generated from: equal digests, same playlists."""
    with _small_page_cache(conn):
        parts = [tuple(conn.execute(sql).fetchone()) for sql in _STATE_PARTS]
    parts.append((vectors.generation(conn),))
    return hashlib.blake2b(json.dumps(parts, default=str).encode(), digest_size=10).hexdigest()


@contextmanager
def _small_page_cache(conn: Any) -> Iterator[None]:
    """Whole-table reads through a 4 MB SQLite page cache: they read every page once, and the connection's usual
    64 MB would keep them all (at 100k tracks, 110 MB of a playlist worker's memory)."""
    if db.dialect_of(conn) != db.SQLITE:
        yield
        return
    usual = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute("PRAGMA cache_size = -4096")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {int(usual)}")


# ------------------------------------------------------------------------------------------ the library

_BPM = analysis.TRACK_LISTING_COLUMNS["bpm"]
_KEY = analysis.TRACK_LISTING_COLUMNS["key"]
_MODE = analysis.TRACK_LISTING_COLUMNS["mode"]
_CAMELOT = analysis.TRACK_LISTING_COLUMNS["camelot"]
_MATCH = external.TRACK_LISTING_COLUMNS["match_status"]
_TRACKS = (
    "SELECT t.track_id, t.path, f.root, f.raw_path IS NULL, t.title, t.artist_display, al.title, t.album_id,"
    " COALESCE(t.duration_s, CASE WHEN ta.status != 'error' THEN ta.duration_s END), t.year,"
    f" t.musicbrainz_recording_id, {_BPM}, {_KEY}, {_MODE}, {_CAMELOT}, ta.energy, ta.danceability,"
    " ta.loudness_lufs, ta.mood_happy, ta.mood_sad, ta.mood_aggressive, ta.mood_relaxed, ta.mood_party,"
    f" {_MATCH}"
    " FROM tracks t JOIN files f ON f.file_id = t.file_id JOIN albums al ON al.album_id = t.album_id"
    " LEFT JOIN track_analysis ta ON ta.track_id = t.track_id"
    " LEFT JOIN album_matches am ON am.album_id = t.album_id"
    " ORDER BY t.track_id"
)

_cache: dict[str, pl.PlaylistLibrary] = {}
_cache_lock = threading.Lock()


def _floats(values: Iterable[Any]) -> np.ndarray:
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def load_library(conn: Any, *, with_vectors: bool = True, max_age_s: float = 0.0) -> pl.PlaylistLibrary:
    """Every track as arrays (see domain.playlists.PlaylistLibrary); this process keeps the last one read per
    catalog and reads again only when `catalog_state` moved. Vectors come from the similar-search index.

    `max_age_s` > 0 lets a library whose state was checked that recently serve without checking again (at 100k
    tracks the check reads ~30-100 ms of SQL: a server answering many requests may accept seconds of lag)."""
    key = f"{db.database_key(conn)}|{with_vectors}"
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and max_age_s > 0 and time.monotonic() - cached.checked_at < max_age_s:
        return cached
    state = catalog_state(conn)
    if cached is not None and cached.state == state:
        cached.checked_at = time.monotonic()
        return cached
    with _small_page_cache(conn):
        library = _read_library(conn, state, with_vectors)
    library.checked_at = time.monotonic()
    with _cache_lock:
        _cache[key] = library
    return library


def forget_libraries() -> None:
    with _cache_lock:
        _cache.clear()


def _read_library(conn: Any, state: str, with_vectors: bool) -> pl.PlaylistLibrary:
    # rows are read in chunks into per-column lists: 100k rows fetched at once held every value twice over
    columns: list[list] = [[] for _ in range(24)]
    cursor = conn.execute(_TRACKS)
    while chunk := cursor.fetchmany(5000):
        for i, values in enumerate(zip(*chunk, strict=True)):
            columns[i].extend(values)
    shared: dict[Any, Any] = {}  # one object per repeated value (roots, artists, albums, keys, statuses, credit and
    for i in (2, 5, 6, 12, 13, 14, 23):  # genre sets), not one per track: ~60 MB less at 100k tracks
        columns[i] = [shared.setdefault(v, v) for v in columns[i]]
    track_ids = np.array(columns[0], dtype=np.int64)
    position = {int(t): i for i, t in enumerate(track_ids.tolist())}
    n = len(track_ids)
    codes: dict[tuple, int] = {}
    camelot = np.empty(n, dtype=np.int16)
    for row, triple in enumerate(zip(columns[12], columns[13], columns[14], strict=True)):
        code = codes.get(triple)
        if code is None:
            code = codes[triple] = pl.camelot_index(et.camelot_code(*triple))
        camelot[row] = code
    artist_sets: list[frozenset[int]] = [frozenset()] * n
    artist_names: dict[int, str] = {}
    for track_id, artist_id, name in conn.execute(
            "SELECT ta.track_id, ta.artist_id, ar.name FROM track_artists ta JOIN artists ar ON ar.artist_id ="
            " ta.artist_id WHERE ta.role = 'main' AND ar.name != ?", (UNKNOWN_ARTIST,)):
        row = position.get(track_id)
        if row is not None:
            artist_sets[row] = artist_sets[row] | {int(artist_id)}
            artist_names.setdefault(int(artist_id), name)
    genres: list[frozenset[str]] = [frozenset()] * n
    display: dict[str, str] = {}
    keys: dict[str, str] = {}
    for track_id, name in conn.execute(
            "SELECT tg.track_id, g.name FROM track_genres tg JOIN genres g ON g.genre_id = tg.genre_id"
            " UNION ALL SELECT track_id, genre FROM track_genres_normalized"):
        row = position.get(track_id)
        key = keys.get(name)
        if key is None:
            key = keys[name] = pl.identity_text(name)
            display.setdefault(key, name)
        if row is not None and key:
            genres[row] = genres[row] | {key}
    artist_sets = [shared.setdefault(a, a) for a in artist_sets]
    genres = [shared.setdefault(g, g) for g in genres]
    recording_ids: list[tuple[str, ...]] = [(rid,) if rid else () for rid in columns[10]]
    for track_id, rid in conn.execute("SELECT track_id, recording_id FROM track_external WHERE recording_id IS NOT NULL"):
        row = position.get(track_id)
        if row is not None and rid not in recording_ids[row]:
            recording_ids[row] = (*recording_ids[row], rid)
    duration = _floats(columns[8])
    titles = [t or "" for t in columns[4]]
    artists = [a or "" for a in columns[5]]
    library = pl.PlaylistLibrary(
        track_ids=track_ids, paths=columns[1], roots=columns[2], titles=titles, artists=artists,
        albums=[a or "" for a in columns[6]], album_ids=np.array(columns[7], dtype=np.int64),
        artist_sets=artist_sets, artist_names=artist_names, duration=duration,
        year=_floats(columns[9]), bpm=_floats(columns[11]), energy=_floats(columns[15]),
        danceability=_floats(columns[16]), loudness=_floats(columns[17]),
        moods={mood: _floats(columns[18 + i]) for i, mood in enumerate(pl.MOODS)}, camelot=camelot,
        genres=genres, match_status=np.array(columns[23], dtype=object),
        recording=pl.recording_groups(recording_ids, titles, artists, duration),
        utf8_path=np.array(columns[3], dtype=bool), genre_display=display, state=state, position=position,
    )  # fmt: skip
    del columns
    settings = vectors.read_settings(conn) if with_vectors else None
    if settings is not None:
        vectors.load_extension(conn)
        index = vector_search.get_index(conn, settings)
        library.text_space = (settings.model_name, settings.weights)
        if len(index):
            library.matrix = index.matrix
            library.ranker = index
            library.vector_row = np.array([index.position.get(int(t), -1) for t in track_ids.tolist()],
                                          dtype=np.int64)
            library.vector_track_row = np.array([position.get(int(t), -1) for t in index.ids.tolist()],
                                                dtype=np.int64)
    return library


# ------------------------------------------------------------------------------------------ saved playlists


@dataclass(frozen=True)
class SavedPlaylist:
    playlist_id: int
    name: str
    kind: str
    request: dict
    created_at: str
    updated_at: str
    materialized_at: str | None
    catalog_state: str | None


_SAVED = ("SELECT playlist_id, name, kind, request, created_at, updated_at, materialized_at, catalog_state"
          " FROM playlists")


def _saved(row: Any) -> SavedPlaylist:
    return SavedPlaylist(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], row[7])


def save_definition(conn: Any, name: str, kind: str, request: dict) -> SavedPlaylist:
    """Create or replace the definition named `name`; it is due for materialization again."""
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO playlists(name, kind, request) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
            " kind = excluded.kind, request = excluded.request, catalog_state = NULL,"
            " updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            (name, kind, json.dumps(request, sort_keys=True)))
    found = get_definition(conn, name)
    assert found is not None
    return found


def get_definition(conn: Any, name: str) -> SavedPlaylist | None:
    row = conn.execute(f"{_SAVED} WHERE name = ?", (name,)).fetchone()
    return None if row is None else _saved(row)


def get_definition_by_id(conn: Any, playlist_id: int) -> SavedPlaylist | None:
    row = conn.execute(f"{_SAVED} WHERE playlist_id = ?", (playlist_id,)).fetchone()
    return None if row is None else _saved(row)


def list_definitions(conn: Any) -> list[SavedPlaylist]:
    return [_saved(r) for r in conn.execute(f"{_SAVED} ORDER BY name")]


def delete_definition(conn: Any, playlist_id: int) -> None:
    with db.transaction(conn):
        conn.execute("DELETE FROM playlists WHERE playlist_id = ?", (playlist_id,))


def due_definitions(conn: Any, state: str | None = None) -> list[SavedPlaylist]:
    """Definitions never materialized, or materialized from another catalog state than the current one."""
    state = state or catalog_state(conn)
    return [s for s in list_definitions(conn) if s.catalog_state != state]


@dataclass(frozen=True)
class StoredPart:
    part: int
    title: str
    description: str
    file: str | None
    entries: tuple[dict, ...]


def stored_parts(conn: Any, playlist_id: int) -> list[StoredPart]:
    """The parts of a playlist's last materialization with their entries, in order."""
    entries: dict[int, list[dict]] = {}
    for row in conn.execute(
            "SELECT part, position, track_id, path, artist, title, album, duration_s, reason FROM playlist_entries"
            " WHERE playlist_id = ? ORDER BY part, position", (playlist_id,)):
        entries.setdefault(row[0], []).append({"position": row[1], "track_id": row[2], "path": row[3],
                                               "artist": row[4], "title": row[5], "album": row[6],
                                               "duration": row[7], "reason": row[8]})
    return [StoredPart(r[0], r[1], r[2], r[3], tuple(entries.get(r[0], ())))
            for r in conn.execute("SELECT part, title, description, file FROM playlist_parts WHERE playlist_id = ?"
                                  " ORDER BY part", (playlist_id,))]


def record_materialization(conn: Any, playlist_id: int, state: str,
                           parts: Sequence[tuple[int, str, str, str | None, Sequence[pl.PlaylistEntry]]]) -> None:
    """Replace a playlist's parts and entries with a new materialization made from catalog `state`."""
    with db.transaction(conn):
        conn.execute("DELETE FROM playlist_entries WHERE playlist_id = ?", (playlist_id,))
        conn.execute("DELETE FROM playlist_parts WHERE playlist_id = ?", (playlist_id,))
        conn.execute("DELETE FROM playlist_pushes WHERE playlist_id = ? AND part >= ?", (playlist_id, len(parts)))
        db.execute_rows(conn, "INSERT INTO playlist_parts(playlist_id, part, title, description, file)"
                        " VALUES (?, ?, ?, ?, ?)",
                        [(playlist_id, part, title, description, file) for part, title, description, file, _ in parts])
        db.execute_rows(
            conn, "INSERT INTO playlist_entries(playlist_id, part, position, track_id, path, artist, title, album,"
            " duration_s, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(playlist_id, part, e.position, e.track_id, e.path, e.artist, e.title, e.album, e.duration, e.reason)
             for part, _, _, _, entries in parts for e in entries])
        conn.execute("UPDATE playlists SET materialized_at = ?, catalog_state = ? WHERE playlist_id = ?",
                     (now_text(), state, playlist_id))


# ------------------------------------------------------------------------------------------ pushes


@dataclass(frozen=True)
class PushState:
    part: int
    target: str
    remote_id: str | None
    status: str
    pushed: int
    unmatched: tuple[dict, ...]
    message: str
    updated_at: str


def push_states(conn: Any, playlist_id: int) -> list[PushState]:
    return [PushState(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), r[6], r[7]) for r in conn.execute(
        "SELECT part, target, remote_id, status, pushed, unmatched, message, updated_at FROM playlist_pushes"
        " WHERE playlist_id = ? ORDER BY part, target", (playlist_id,))]


def save_push(conn: Any, playlist_id: int, part: int, target: str, *, remote_id: str | None, status: str,
              pushed: int, unmatched: Sequence[dict], message: str) -> None:
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO playlist_pushes(playlist_id, part, target, remote_id, status, pushed, unmatched, message,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(playlist_id, part, target) DO UPDATE SET"
            " remote_id = COALESCE(excluded.remote_id, playlist_pushes.remote_id), status = excluded.status,"
            " pushed = excluded.pushed, unmatched = excluded.unmatched, message = excluded.message,"
            " updated_at = excluded.updated_at",
            (playlist_id, part, target, remote_id, status, pushed, json.dumps(list(unmatched)), message[:2000],
             now_text()))


def targets_to_retry(conn: Any, playlist_id: int) -> set[str]:
    """Targets whose last push of this playlist could not reach the server."""
    return {r[0] for r in conn.execute("SELECT DISTINCT target FROM playlist_pushes WHERE playlist_id = ?"
                                       " AND status = 'deferred'", (playlist_id,))}


def cached_song_ids(conn: Any, target: str, track_ids: Sequence[int]) -> dict[int, str]:
    if not track_ids:
        return {}
    subquery, param = db.id_set(conn, track_ids)
    return {r[0]: r[1] for r in conn.execute(
        f"SELECT track_id, song_id FROM subsonic_song_ids WHERE target = ? AND track_id IN ({subquery})",
        (target, param))}


def save_song_ids(conn: Any, target: str, rows: Sequence[tuple[int, str, str]]) -> None:
    """rows: (track_id, song_id, matched_by); tracks deleted meanwhile are skipped."""
    if not rows:
        return
    stamp = now_text()
    with db.transaction(conn):
        subquery, param = db.id_set(conn, [r[0] for r in rows])
        present = {r[0] for r in conn.execute(f"SELECT track_id FROM tracks WHERE track_id IN ({subquery})", (param,))}
        db.execute_rows(
            conn, "INSERT INTO subsonic_song_ids(target, track_id, song_id, matched_by, mapped_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(target, track_id) DO UPDATE SET song_id = excluded.song_id,"
            " matched_by = excluded.matched_by, mapped_at = excluded.mapped_at",
            [(target, t, s, by, stamp) for t, s, by in {r[0]: r for r in rows}.values() if t in present])


def forget_song_ids(conn: Any, target: str, track_ids: Sequence[int]) -> None:
    if not track_ids:
        return
    with db.transaction(conn):
        subquery, param = db.id_set(conn, track_ids)
        conn.execute(f"DELETE FROM subsonic_song_ids WHERE target = ? AND track_id IN ({subquery})", (target, param))


def tracks_present(conn: Any, track_ids: Sequence[int]) -> dict[int, str]:
    """track id -> path of the given tracks still in the catalog."""
    if not track_ids:
        return {}
    subquery, param = db.id_set(conn, track_ids)
    return {r[0]: r[1] for r in conn.execute(f"SELECT track_id, path FROM tracks WHERE track_id IN ({subquery})",
                                             (param,))}
