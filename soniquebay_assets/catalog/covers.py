"""Covers repository: chosen pictures, the negative-result cache, refresh selection and UI counts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from soniquebay_assets.catalog import negative_cache
from soniquebay_assets.catalog.entities import artists_in_shards_cte

ENTITY_TYPES = ("album", "artist")


def _placeholders(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


# -- refresh selection ---------------------------------------------------------------------------------------


def albums_without_cover(conn: Any, shards: Sequence[str]) -> list[dict[str, Any]]:
    """Albums in these shards that have no cover yet, with what priority and the sources need."""
    if not shards:
        return []
    rows = conn.execute(
        f"""
        SELECT a.album_id, a.title, a.album_artist, a.musicbrainz_release_id, a.musicbrainz_release_group_id,
               a.title_from_fallback, a.created_at, COUNT(t.track_id) AS track_count
        FROM albums a JOIN tracks t ON t.album_id = a.album_id
        WHERE t.shard IN ({_placeholders(shards)})
          AND NOT EXISTS (SELECT 1 FROM covers c WHERE c.entity_type = 'album' AND c.entity_id = a.album_id)
        GROUP BY a.album_id
        ORDER BY a.album_id
        """,
        list(shards),
    ).fetchall()
    return [dict(r) for r in rows]


def album_track_paths(conn: Any, album_id: int, limit: int = 8) -> list[str]:
    """Absolute track paths, those flagged with an embedded picture first, in disc/track order."""
    rows = conn.execute(
        "SELECT path FROM tracks WHERE album_id = ? ORDER BY has_embedded_picture DESC, "
        "COALESCE(disc_number, 1), COALESCE(track_number, 0), path LIMIT ?",
        (album_id, limit),
    ).fetchall()
    return [r[0] for r in rows]


def album_track_dirs(conn: Any, album_id: int) -> list[str]:
    """Every track path of the album (the caller reduces them to folders; a compilation may span several)."""
    return [r[0] for r in conn.execute("SELECT path FROM tracks WHERE album_id = ? ORDER BY path", (album_id,))]


def artists_without_image(conn: Any, shards: Sequence[str]) -> list[dict[str, Any]]:
    """Artists credited on a track (or heading an album) in these shards that have no image yet.

    An artist spread over several shards is seen by each of their runs; the first stores the image or a cached
    miss, so the others skip it."""
    if not shards:
        return []
    marks = _placeholders(shards)
    rows = conn.execute(
        artists_in_shards_cte(marks) + """
        SELECT ar.artist_id, ar.name, ar.name_key, ar.musicbrainz_artist_id, ar.created_at,
               (SELECT COUNT(*) FROM track_artists ta WHERE ta.artist_id = ar.artist_id) AS track_count
        FROM artists ar JOIN present p ON p.artist_id = ar.artist_id
        WHERE NOT EXISTS (SELECT 1 FROM covers c WHERE c.entity_type = 'artist' AND c.entity_id = ar.artist_id)
        ORDER BY ar.artist_id
        """,
        [*shards, *shards],
    ).fetchall()
    return [dict(r) for r in rows]


def artist_track_paths(conn: Any, artist_id: int, limit: int = 200) -> list[str]:
    """Track paths of albums the artist heads (where an artist.jpg would sit), else of tracks they play on."""
    rows = conn.execute(
        "SELECT t.path FROM album_artists aa JOIN tracks t ON t.album_id = aa.album_id "
        "WHERE aa.artist_id = ? ORDER BY t.path LIMIT ?",
        (artist_id, limit),
    ).fetchall()
    if not rows:
        rows = conn.execute(
            "SELECT t.path FROM track_artists ta JOIN tracks t ON t.track_id = ta.track_id "
            "WHERE ta.artist_id = ? ORDER BY t.path LIMIT ?",
            (artist_id, limit),
        ).fetchall()
    return [r[0] for r in rows]


# -- negative cache ------------------------------------------------------------------------------------------


def cached_misses(conn: Any, entity_type: str, entity_ids: Iterable[int]) -> dict[int, dict[str, dict]]:
    """entity id -> source -> cache row (expired or not), for the given entities."""
    ids = list(entity_ids)
    out: dict[int, dict[str, dict]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = conn.execute(
            f"SELECT entity_id, source, kind, reason, attempts, expires_at FROM cover_misses "
            f"WHERE entity_type = ? AND entity_id IN ({_placeholders(chunk)})",
            [entity_type, *chunk],
        ).fetchall()
        for r in rows:
            out.setdefault(r["entity_id"], {})[r["source"]] = dict(r)
    return out


def record_miss(conn: Any, entity_type: str, entity_id: int, source: str, *, kind: str, reason: str,
                now: str, expires_at: str) -> None:
    negative_cache.record_miss(conn, "cover_misses", entity_type, entity_id, source, kind=kind, reason=reason,
                               now=now, expires_at=expires_at)


def clear_misses(conn: Any, entity_type: str, entity_id: int) -> None:
    conn.execute("DELETE FROM cover_misses WHERE entity_type = ? AND entity_id = ?", (entity_type, entity_id))


# -- covers --------------------------------------------------------------------------------------------------


def upsert_cover(conn: Any, entity_type: str, entity_id: int, *, source: str, origin: str, path: str,
                 sha256: str, mime: str, width: int, height: int, byte_size: int, thumbnails: dict[str, str],
                 now: str) -> None:
    conn.execute(
        """
        INSERT INTO covers(entity_type, entity_id, source, origin, path, sha256, mime, width, height, byte_size,
                           thumbnails, fetched_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(entity_type, entity_id) DO UPDATE SET
            source = excluded.source, origin = excluded.origin, path = excluded.path, sha256 = excluded.sha256,
            mime = excluded.mime, width = excluded.width, height = excluded.height,
            byte_size = excluded.byte_size, thumbnails = excluded.thumbnails, fetched_at = excluded.fetched_at
        """,
        (entity_type, entity_id, source, origin, path, sha256, mime, width, height, byte_size,
         json.dumps(thumbnails, sort_keys=True), now),
    )


def referenced_hashes(conn: Any) -> set[str]:
    """Every sha256 a cover row still points at (what the image store must keep)."""
    return {r[0] for r in conn.execute("SELECT DISTINCT sha256 FROM covers")}


def list_covers(conn: Any, entity_type: str | None = None) -> list[dict[str, Any]]:
    """Every stored cover with the entity's display name (album title or artist name)."""
    sql = """
        SELECT c.entity_type, c.entity_id,
               CASE c.entity_type WHEN 'album' THEN al.title ELSE ar.name END AS name,
               c.source, c.path, c.width, c.height, c.mime, c.sha256, c.thumbnails, c.fetched_at
        FROM covers c
        LEFT JOIN albums al ON c.entity_type = 'album' AND al.album_id = c.entity_id
        LEFT JOIN artists ar ON c.entity_type = 'artist' AND ar.artist_id = c.entity_id
    """
    params: list[Any] = []
    if entity_type:
        sql += " WHERE c.entity_type = ?"
        params.append(entity_type)
    sql += " ORDER BY c.entity_type, c.entity_id"
    return [dict(r) for r in conn.execute(sql, params)]


# -- counts for the UI ---------------------------------------------------------------------------------------


def coverage(conn: Any, entity_type: str) -> tuple[int, int]:
    """(entities with a cover, all entities) for albums or artists."""
    table, key = ("albums", "album_id") if entity_type == "album" else ("artists", "artist_id")
    total = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    covered = conn.execute(
        f"SELECT COUNT(*) FROM covers c JOIN {table} e ON e.{key} = c.entity_id WHERE c.entity_type = ?",
        (entity_type,),
    ).fetchone()[0]
    return covered, total


def counts_by_source(conn: Any, entity_type: str) -> dict[str, int]:
    rows = conn.execute("SELECT source, COUNT(*) FROM covers WHERE entity_type = ? GROUP BY source",
                        (entity_type,)).fetchall()
    return {r[0]: r[1] for r in rows}


def misses_by_reason(conn: Any, entity_type: str, *, kind: str) -> dict[str, int]:
    """Cached misses or failures of entities still without a cover, by source:reason."""
    rows = conn.execute(
        """
        SELECT m.source || ':' || m.reason, COUNT(*) FROM cover_misses m
        WHERE m.entity_type = ? AND m.kind = ?
          AND NOT EXISTS (SELECT 1 FROM covers c WHERE c.entity_type = m.entity_type AND c.entity_id = m.entity_id)
        GROUP BY m.source, m.reason
        """,
        (entity_type, kind),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def sample_thumbnails(conn: Any, entity_type: str, limit: int = 24) -> list[tuple[str, str]]:
    """(name, 150 px thumbnail path relative to the covers folder) of recently fetched covers."""
    rows = conn.execute(
        """
        SELECT CASE c.entity_type WHEN 'album' THEN al.title ELSE ar.name END, c.thumbnails
        FROM covers c
        LEFT JOIN albums al ON c.entity_type = 'album' AND al.album_id = c.entity_id
        LEFT JOIN artists ar ON c.entity_type = 'artist' AND ar.artist_id = c.entity_id
        WHERE c.entity_type = ? ORDER BY c.fetched_at DESC, c.cover_id DESC LIMIT ?
        """,
        (entity_type, limit),
    ).fetchall()
    out = []
    for name, thumbs in rows:
        small = json.loads(thumbs).get("150")
        if small:
            out.append((name or "", small))
    return out
