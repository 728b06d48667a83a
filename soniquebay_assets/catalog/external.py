"""Online metadata repository: album matches, artist and track facts from services, negative and response caches.

Tag columns (albums.musicbrainz_release_id, artists.musicbrainz_artist_id, ...) are never written here: what the
services said lives in its own tables, with source, score and fetched_at.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from soniquebay_assets.catalog import negative_cache
from soniquebay_assets.catalog.entities import artists_in_shards_cte
from soniquebay_assets.domain.albums import UNKNOWN_ARTIST

MATCH_STATUSES = ("tagged", "matched", "candidates", "unmatched", "pending")

# Each track's album match in `soniquebay tracks --json` and `soniquebay export` (catalog.queries.list_tracks).
TRACK_LISTING_COLUMNS: dict[str, str] = {
    "match_status": "CASE WHEN COALESCE(al.musicbrainz_release_id, '') != '' THEN 'tagged'"
                    " ELSE COALESCE(am.status, 'pending') END",
    "matched_release_id": "am.release_id",
    "match_score": "am.score",
}
TRACK_LISTING_JOINS = ["LEFT JOIN album_matches am ON am.album_id = t.album_id"]
_CHUNK = 500


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


# -- what needs a lookup -------------------------------------------------------------------------------------


def albums_to_match(conn: Any, shards: Sequence[str], now: str, source: str = "musicbrainz") -> list[dict[str, Any]]:
    """Albums of `shards` without a tagged release id, not yet decided, whose negative cache allows a new try."""
    if not shards:
        return []
    rows = conn.execute(
        f"""
        SELECT a.album_id, a.title, a.album_artist, a.is_compilation, a.title_from_fallback, MIN(t.shard) AS shard,
               COUNT(t.track_id) AS track_count
        FROM albums a JOIN tracks t ON t.album_id = a.album_id
        WHERE t.shard IN ({_marks(shards)})
          AND (a.musicbrainz_release_id IS NULL OR a.musicbrainz_release_id = '')
          AND NOT EXISTS (SELECT 1 FROM album_matches m WHERE m.album_id = a.album_id
                          AND (m.status IN ('matched', 'candidates') OR m.decided_by = 'user'))
          AND NOT EXISTS (SELECT 1 FROM external_misses x WHERE x.entity_type = 'album'
                          AND x.entity_id = a.album_id AND x.source = ? AND x.expires_at > ?)
        GROUP BY a.album_id, a.title, a.album_artist, a.is_compilation, a.title_from_fallback
        ORDER BY a.album_id
        """,
        [*shards, source, now],
    ).fetchall()
    return [dict(r) for r in rows]


def album_tracks(conn: Any, album_id: int) -> list[dict[str, Any]]:
    """The album's tracks in disc/track order with their durations."""
    rows = conn.execute(
        "SELECT track_id, duration_s, disc_number, track_number FROM tracks WHERE album_id = ? "
        "ORDER BY COALESCE(disc_number, 1), COALESCE(track_number, 0), path",
        (album_id,),
    ).fetchall()
    return [dict(r) for r in rows]


def artists_to_lookup(conn: Any, shards: Sequence[str], now: str, sources: Sequence[str]) -> list[dict[str, Any]]:
    """Artists credited in `shards` with, per source, whether that source is due (no fresh row, no active miss)."""
    if not shards or not sources:
        return []
    marks = _marks(shards)
    rows = conn.execute(
        artists_in_shards_cte(marks) + f"""
        SELECT ar.artist_id, ar.name, ar.musicbrainz_artist_id,
               (SELECT MIN(t.shard) FROM track_artists ta JOIN tracks t ON t.track_id = ta.track_id
                WHERE ta.artist_id = ar.artist_id AND t.shard IN ({marks})) AS shard
        FROM artists ar JOIN present p ON p.artist_id = ar.artist_id
        WHERE ar.name != ?
        ORDER BY ar.artist_id
        """,
        [*shards, *shards, *shards, UNKNOWN_ARTIST],
    ).fetchall()
    artists = [dict(r) for r in rows]
    if not artists:
        return []
    fresh = _fresh_pairs(conn, "SELECT artist_id, source FROM artist_external WHERE expires_at > ? "
                               "AND artist_id IN ({})", now, [a["artist_id"] for a in artists])
    blocked = _active_misses(conn, "artist", [a["artist_id"] for a in artists], now)
    out = []
    for artist in artists:
        due = [s for s in sources if (artist["artist_id"], s) not in fresh and (artist["artist_id"], s) not in blocked]
        if due:
            artist["due"] = due
            artist["shard"] = artist["shard"] or shards[0]
            out.append(artist)
    return out


def tracks_to_identify(conn: Any, shards: Sequence[str], now: str, source: str = "acoustid") -> list[dict[str, Any]]:
    """Tracks of `shards` with no usable title or artist (file-name title, unknown artist), not yet identified."""
    if not shards:
        return []
    rows = conn.execute(
        f"""
        SELECT t.track_id, t.path, t.shard, t.duration_s, t.title, t.artist_display
        FROM tracks t
        WHERE t.shard IN ({_marks(shards)})
          AND (t.title_from_fallback = 1 OR t.artist_display = '' OR t.artist_display = ?)
          AND NOT EXISTS (SELECT 1 FROM track_external e WHERE e.track_id = t.track_id AND e.source = ?)
          AND NOT EXISTS (SELECT 1 FROM external_misses x WHERE x.entity_type = 'track'
                          AND x.entity_id = t.track_id AND x.source = ? AND x.expires_at > ?)
        ORDER BY t.track_id
        """,
        [*shards, UNKNOWN_ARTIST, source, source, now],
    ).fetchall()
    return [dict(r) for r in rows]


def _fresh_pairs(conn: Any, sql: str, now: str, ids: Sequence[int], *extra: Any) -> set[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    for start in range(0, len(ids), _CHUNK):
        part = list(ids[start:start + _CHUNK])
        found.update((r[0], r[1]) for r in conn.execute(sql.format(_marks(part)), [now, *extra, *part]))
    return found


def _active_misses(conn: Any, entity_type: str, ids: Sequence[int], now: str) -> set[tuple[int, str]]:
    return _fresh_pairs(conn, "SELECT entity_id, source FROM external_misses WHERE expires_at > ? "
                              "AND entity_type = ? AND entity_id IN ({})", now, ids, entity_type)


# -- writes --------------------------------------------------------------------------------------------------


def save_album_match(conn: Any, album_id: int, *, status: str, source: str, best: Mapping[str, Any] | None,
                     album_track_count: int, candidates: Sequence[Mapping[str, Any]], now: str,
                     decided_by: str = "auto") -> None:
    best = best or {}
    conn.execute(
        """
        INSERT INTO album_matches(album_id, status, decided_by, source, release_id, release_group_id, release_title,
                                  release_artist, label, release_date, release_track_count, album_track_count,
                                  score, candidates, fetched_at, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (album_id) DO UPDATE SET
            status = excluded.status, decided_by = excluded.decided_by, source = excluded.source,
            release_id = excluded.release_id, release_group_id = excluded.release_group_id,
            release_title = excluded.release_title, release_artist = excluded.release_artist,
            label = excluded.label, release_date = excluded.release_date,
            release_track_count = excluded.release_track_count, album_track_count = excluded.album_track_count,
            score = excluded.score, candidates = excluded.candidates, fetched_at = excluded.fetched_at,
            updated_at = excluded.updated_at
        """,
        (album_id, status, decided_by, source, best.get("release_id"), best.get("release_group_id"),
         best.get("title"), best.get("artist"), best.get("label"), best.get("date"), best.get("track_count"),
         album_track_count, best.get("score"), json.dumps(list(candidates), sort_keys=True), now, now),
    )


def save_track_external(conn: Any, rows: Iterable[tuple[int, str, str | None, str | None, str | None,
                                                        float | None, str]]) -> None:
    """(track_id, source, recording_id, title, artist, score, fetched_at) rows."""
    conn.executemany(
        """
        INSERT INTO track_external(track_id, source, recording_id, title, artist, score, fetched_at)
        VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (track_id, source) DO UPDATE SET
            recording_id = excluded.recording_id, title = excluded.title, artist = excluded.artist,
            score = excluded.score, fetched_at = excluded.fetched_at
        """,
        list(rows),
    )


def save_artist_external(conn: Any, artist_id: int, source: str, *, now: str, expires_at: str,
                         musicbrainz_artist_id: str | None = None, score: float | None = None,
                         summary: str | None = None, listeners: int | None = None, tags: Sequence[str] = (),
                         similar: Sequence[str] = (), url: str | None = None) -> None:
    conn.execute(
        """
        INSERT INTO artist_external(artist_id, source, musicbrainz_artist_id, score, summary, listeners, tags,
                                    similar_artists, url, fetched_at, expires_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (artist_id, source) DO UPDATE SET
            musicbrainz_artist_id = excluded.musicbrainz_artist_id, score = excluded.score,
            summary = excluded.summary, listeners = excluded.listeners, tags = excluded.tags,
            similar_artists = excluded.similar_artists, url = excluded.url, fetched_at = excluded.fetched_at,
            expires_at = excluded.expires_at
        """,
        (artist_id, source, musicbrainz_artist_id, score, summary, listeners, json.dumps(list(tags)),
         json.dumps(list(similar)), url, now, expires_at),
    )


def replace_artist_genres(conn: Any, artist_id: int, genres: Sequence[str], source: str) -> None:
    conn.execute("DELETE FROM artist_genres WHERE artist_id = ? AND source = ?", (artist_id, source))
    conn.executemany(
        "INSERT INTO artist_genres(artist_id, genre, position, source) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (artist_id, genre) DO NOTHING",
        [(artist_id, genre, i, source) for i, genre in enumerate(genres)],
    )


def online_genres_by_track(conn: Any, track_ids: Sequence[int]) -> dict[int, list[str]]:
    """Canonical genres of each track's main artists (from their online tags), in artist then tag order."""
    out: dict[int, list[str]] = {}
    ids = sorted(set(int(t) for t in track_ids))
    for start in range(0, len(ids), _CHUNK):
        part = ids[start:start + _CHUNK]
        rows = conn.execute(
            f"SELECT ta.track_id, g.genre FROM track_artists ta JOIN artist_genres g ON g.artist_id = ta.artist_id "
            f"WHERE ta.role = 'main' AND ta.track_id IN ({_marks(part)}) "
            f"ORDER BY ta.track_id, ta.position, g.position",
            part,
        ).fetchall()
        for track_id, genre in rows:
            out.setdefault(track_id, []).append(genre)
    return out


def album_credited_artists(conn: Any, album_id: int) -> list[dict[str, Any]]:
    """Artists heading the album or credited on one of its tracks."""
    rows = conn.execute(
        """
        SELECT ar.artist_id, ar.name, ar.musicbrainz_artist_id FROM artists ar
        WHERE ar.artist_id IN (SELECT aa.artist_id FROM album_artists aa WHERE aa.album_id = ?
                               UNION
                               SELECT ta.artist_id FROM track_artists ta JOIN tracks t ON t.track_id = ta.track_id
                               WHERE t.album_id = ?)
        ORDER BY ar.artist_id
        """,
        (album_id, album_id)).fetchall()
    return [dict(r) for r in rows]


def matched_releases(conn: Any, album_ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    """album id -> (release id, release group id) for albums matched to a MusicBrainz release."""
    ids = sorted(set(int(a) for a in album_ids))
    found: dict[int, tuple[str, str | None]] = {}
    for start in range(0, len(ids), _CHUNK):
        part = ids[start:start + _CHUNK]
        for album_id, release_id, group_id in conn.execute(
                f"SELECT album_id, release_id, release_group_id FROM album_matches WHERE status = 'matched' "
                f"AND release_id IS NOT NULL AND album_id IN ({_marks(part)})", part):
            found[album_id] = (release_id, group_id)
    return found


# -- negative cache (same pattern as cover_misses) -----------------------------------------------------------


def miss_attempts(conn: Any, entity_type: str, entity_id: int, source: str) -> int:
    row = conn.execute("SELECT attempts FROM external_misses WHERE entity_type = ? AND entity_id = ? AND source = ?",
                       (entity_type, entity_id, source)).fetchone()
    return int(row[0]) if row else 0


def record_miss(conn: Any, entity_type: str, entity_id: int, source: str, *, kind: str, reason: str,
                now: str, expires_at: str) -> None:
    negative_cache.record_miss(conn, "external_misses", entity_type, entity_id, source, kind=kind, reason=reason,
                               now=now, expires_at=expires_at)


def clear_miss(conn: Any, entity_type: str, entity_id: int, source: str) -> None:
    conn.execute("DELETE FROM external_misses WHERE entity_type = ? AND entity_id = ? AND source = ?",
                 (entity_type, entity_id, source))


def misses_by_reason(conn: Any, now: str) -> dict[str, int]:
    """Active cached misses and failures by entity_type:source:kind:reason."""
    rows = conn.execute(
        "SELECT entity_type, source, kind, reason, COUNT(*) FROM external_misses WHERE expires_at > ? "
        "GROUP BY entity_type, source, kind, reason", (now,)).fetchall()
    return {f"{r[0]}:{r[1]}:{r[2]}:{r[3]}": r[4] for r in rows}


def delete_orphans(conn: Any) -> int:
    """Cache rows of albums, artists or tracks that no longer exist (the tables have no foreign key to them)."""
    removed = 0
    for entity_type, table, key in (("album", "albums", "album_id"), ("artist", "artists", "artist_id"),
                                    ("track", "tracks", "track_id")):
        removed += conn.execute(
            f"DELETE FROM external_misses WHERE entity_type = ? AND NOT EXISTS "
            f"(SELECT 1 FROM {table} e WHERE e.{key} = external_misses.entity_id)", (entity_type,)).rowcount
    return removed


# -- response cache ------------------------------------------------------------------------------------------


def cache_get(conn: Any, source: str, request_key: str, now: str) -> Any | None:
    row = conn.execute("SELECT body FROM external_cache WHERE source = ? AND request_key = ? AND expires_at > ?",
                       (source, request_key, now)).fetchone()
    return json.loads(row[0]) if row else None


def cache_put(conn: Any, source: str, request_key: str, body: Any, *, now: str, expires_at: str) -> None:
    conn.execute(
        """
        INSERT INTO external_cache(source, request_key, body, fetched_at, expires_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (source, request_key) DO UPDATE SET
            body = excluded.body, fetched_at = excluded.fetched_at, expires_at = excluded.expires_at
        """,
        (source, request_key, json.dumps(body, sort_keys=True), now, expires_at),
    )


def purge_expired_cache(conn: Any, now: str) -> int:
    return conn.execute("DELETE FROM external_cache WHERE expires_at <= ?", (now,)).rowcount


# -- reading -------------------------------------------------------------------------------------------------


def list_albums(conn: Any, status: str | None = None, album_id: int | None = None) -> list[dict[str, Any]]:
    """Every album (or one) with its tagged release id beside the match the services gave (status derived),
    and its measured loudness and ReplayGain album gain and peak (NULL until its tracks are analysed)."""
    where, params = ("WHERE a.album_id = ?", [album_id]) if album_id is not None else ("", [])
    rows = conn.execute(
        f"""
        SELECT a.album_id, a.title, a.album_artist, a.musicbrainz_release_id AS tagged_release_id,
               a.musicbrainz_release_group_id AS tagged_release_group_id, a.label AS tagged_label,
               a.date AS tagged_date, m.status, m.decided_by, m.source, m.release_id, m.release_group_id,
               m.release_title, m.release_artist, m.label, m.release_date, m.release_track_count, m.score,
               m.candidates, m.fetched_at,
               (SELECT COUNT(*) FROM tracks t WHERE t.album_id = a.album_id) AS track_count,
               lo.loudness_lufs, lo.replaygain_album_gain_db, lo.replaygain_album_peak
        FROM albums a LEFT JOIN album_matches m ON m.album_id = a.album_id
        LEFT JOIN album_loudness lo ON lo.album_id = a.album_id
        {where}
        ORDER BY a.album_id
        """, params
    ).fetchall()
    out = []
    for row in rows:
        item = dict(row)
        item["match_status"] = album_status(item)
        item["candidates"] = json.loads(item["candidates"]) if item["candidates"] else []
        if status is None or item["match_status"] == status:
            out.append(item)
    return out


def album_status(row: Mapping[str, Any]) -> str:
    if row.get("tagged_release_id"):
        return "tagged"
    return row.get("status") or "pending"


def get_album(conn: Any, album_id: int) -> dict[str, Any] | None:
    found = list_albums(conn, album_id=album_id)
    return found[0] if found else None


def match_counts(conn: Any) -> dict[str, int]:
    """Albums per match status, over the whole catalog."""
    counts = {status: 0 for status in MATCH_STATUSES}
    rows = conn.execute(
        """
        SELECT CASE WHEN a.musicbrainz_release_id IS NOT NULL AND a.musicbrainz_release_id != '' THEN 'tagged'
                    ELSE COALESCE(m.status, 'pending') END AS status, COUNT(*)
        FROM albums a LEFT JOIN album_matches m ON m.album_id = a.album_id
        GROUP BY 1
        """
    ).fetchall()
    for status, count in rows:
        counts[status] = count
    return counts


def track_count_mismatches(conn: Any) -> list[dict[str, Any]]:
    """Matched albums whose current number of tracks differs from their release's track count."""
    rows = conn.execute(
        """
        SELECT m.album_id, a.title, m.release_id, m.release_track_count,
               (SELECT COUNT(*) FROM tracks t WHERE t.album_id = m.album_id) AS track_count
        FROM album_matches m JOIN albums a ON a.album_id = m.album_id
        WHERE m.status = 'matched'
        """
    ).fetchall()
    return [dict(r) for r in rows if r["release_track_count"] is not None
            and r["release_track_count"] != r["track_count"]]


def list_artist_facts(conn: Any) -> list[dict[str, Any]]:
    """Every artist with its tagged MusicBrainz id beside what MusicBrainz and Last.fm said, and its online genres."""
    rows = conn.execute(
        """
        SELECT ar.artist_id, ar.name, ar.musicbrainz_artist_id AS tagged_artist_id,
               mb.musicbrainz_artist_id AS found_artist_id, mb.score AS mb_score, mb.fetched_at AS mb_fetched_at,
               lf.summary, lf.listeners, lf.tags, lf.similar_artists, lf.url, lf.fetched_at AS lastfm_fetched_at
        FROM artists ar
        LEFT JOIN artist_external mb ON mb.artist_id = ar.artist_id AND mb.source = 'musicbrainz'
        LEFT JOIN artist_external lf ON lf.artist_id = ar.artist_id AND lf.source = 'lastfm'
        ORDER BY ar.artist_id
        """
    ).fetchall()
    genres: dict[int, list[str]] = {}
    for artist_id, genre in conn.execute("SELECT artist_id, genre FROM artist_genres ORDER BY artist_id, position"):
        genres.setdefault(artist_id, []).append(genre)
    out = []
    for row in rows:
        item = dict(row)
        item["tags"] = json.loads(item["tags"]) if item["tags"] else []
        item["similar_artists"] = json.loads(item["similar_artists"]) if item["similar_artists"] else []
        item["genres"] = genres.get(item["artist_id"], [])
        out.append(item)
    return out
