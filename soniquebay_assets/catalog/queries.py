"""Read-side queries: track listing for the CLI, counts and breakdowns for the UI, data-quality checks."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

# Extra SELECT columns and JOINs contributed by later stages (enrichment, vectors...): name -> SQL expression.
TRACK_LISTING_EXTRA_COLUMNS: dict[str, str] = {}
TRACK_LISTING_EXTRA_JOINS: list[str] = []

# Analysed tempo/key/loudness/moods via LEFT JOIN track_analysis; the tag-vs-analysis rule lives in that module.
from soniquebay_assets.catalog import analysis as _analysis  # noqa: E402

TRACK_LISTING_EXTRA_COLUMNS.update(_analysis.TRACK_LISTING_COLUMNS)
TRACK_LISTING_EXTRA_JOINS.extend(_analysis.TRACK_LISTING_JOINS)

# The album's MusicBrainz match (tagged, matched, candidates, unmatched, pending) via LEFT JOIN album_matches.
from soniquebay_assets.catalog import external as _external  # noqa: E402

TRACK_LISTING_EXTRA_COLUMNS.update(_external.TRACK_LISTING_COLUMNS)
TRACK_LISTING_EXTRA_JOINS.extend(_external.TRACK_LISTING_JOINS)


def _shard_filter(shards: Sequence[str] | None, column: str) -> tuple[str, list[str]]:
    if not shards:
        return "", []
    return f" AND {column} IN ({','.join('?' * len(shards))})", list(shards)


# Every other tag column, for `soniquebay export` (the listing above keeps `soniquebay tracks` short).
EXPORT_TAG_COLUMNS: dict[str, str] = {
    "artist_display": "t.artist_display", "date": "t.date", "original_date": "t.original_date",
    "label": "t.label", "isrc": "t.isrc", "comment": "t.comment",
    "musicbrainz_track_id": "t.musicbrainz_track_id",
    "musicbrainz_release_group_id": "al.musicbrainz_release_group_id",
    "replaygain_track_peak_tag": "t.replaygain_track_peak", "replaygain_album_gain_tag": "t.replaygain_album_gain",
    "replaygain_album_peak_tag": "t.replaygain_album_peak", "audio_ok": "t.audio_ok",
}


def list_tracks(conn: Any, shards: Sequence[str] | None = None, *,
                more_columns: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """One dict per track with the fields `soniquebay tracks --json` prints (plus `more_columns`, name -> SQL)."""
    columns = {**(more_columns or {}), **TRACK_LISTING_EXTRA_COLUMNS}
    extra = "".join(f", {expr} AS {name}" for name, expr in columns.items())
    joins = " ".join(TRACK_LISTING_EXTRA_JOINS)
    where, params = _shard_filter(shards, "t.shard")
    sql = (
        "SELECT t.track_id, t.path, t.title, t.album_id, al.title AS album, al.album_artist, t.track_number, "
        "t.track_total, t.disc_number, t.disc_total, t.year, t.duration_s, t.format, t.codec, t.bitrate, "
        "t.sample_rate, t.channels, t.bit_depth, t.musicbrainz_recording_id, al.musicbrainz_release_id, "
        "t.compilation, t.quality_score, t.title_from_fallback, t.fallbacks, t.composer, t.bpm_tag, t.key_tag, "
        "t.replaygain_track_gain AS replaygain_track_gain_tag, t.has_embedded_picture, t.size, t.mtime_ns, "
        "(SELECT json_group_array(name) FROM (SELECT ar.name FROM track_artists ta JOIN artists ar USING (artist_id) "
        " WHERE ta.track_id = t.track_id AND ta.role = 'main' ORDER BY ta.position) AS names) AS artists_json, "
        "(SELECT json_group_array(name) FROM (SELECT ar.name FROM track_artists ta JOIN artists ar USING (artist_id) "
        " WHERE ta.track_id = t.track_id AND ta.role = 'featured' ORDER BY ta.position) AS names) AS featured_json, "
        "(SELECT json_group_array(name) FROM (SELECT g.name FROM track_genres tg JOIN genres g USING (genre_id) "
        " WHERE tg.track_id = t.track_id ORDER BY tg.position) AS names) AS genres_json"
        f"{extra} FROM tracks t JOIN albums al ON al.album_id = t.album_id {joins} WHERE 1 = 1{where} "
        "ORDER BY al.album_artist, al.title, t.disc_number, t.track_number, t.path"
    )
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    for row in cursor:
        item = dict(zip(names, row, strict=True))
        item["artists"] = json.loads(item.pop("artists_json"))
        item["featured_artists"] = json.loads(item.pop("featured_json"))
        item["genres"] = json.loads(item.pop("genres_json"))
        item["fallbacks"] = json.loads(item["fallbacks"])
        item["compilation"] = bool(item["compilation"])
        item["title_from_fallback"] = bool(item["title_from_fallback"])
        item["has_embedded_picture"] = bool(item["has_embedded_picture"])
        item["duration_s"] = round(item["duration_s"], 3) if item["duration_s"] is not None else None
        for name in columns:
            if isinstance(item.get(name), str) and item[name][:1] in "[{":
                try:
                    item[name] = json.loads(item[name])
                except ValueError:
                    pass
        yield item


def list_errors(conn: Any, stage: str | None = None) -> Iterator[dict[str, Any]]:
    sql = "SELECT path, stage, reason, detail, severity, occurrences, first_seen, last_seen FROM scan_errors"
    params: list[str] = []
    if stage:
        sql += " WHERE stage = ?"
        params.append(stage)
    cursor = conn.execute(sql + " ORDER BY stage, path", params)
    names = [d[0] for d in cursor.description]
    for row in cursor:
        yield dict(zip(names, row, strict=True))


def catalog_counts(conn: Any) -> dict[str, int]:
    one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    return {
        "tracks": one("SELECT COUNT(*) FROM tracks"),
        "albums": one("SELECT COUNT(*) FROM albums"),
        "artists": one("SELECT COUNT(*) FROM artists"),
        "genres": one("SELECT COUNT(*) FROM genres"),
        "files": one("SELECT COUNT(*) FROM files"),
        "errors": one("SELECT COUNT(*) FROM scan_errors WHERE severity = 'error'"),
        "warnings": one("SELECT COUNT(*) FROM scan_errors WHERE severity = 'warning'"),
    }


def errors_by_reason(conn: Any, stage: str | None = None, shards: Sequence[str] | None = None) -> dict[str, int]:
    where, params = _shard_filter(shards, "shard")
    if stage:
        where += " AND stage = ?"
        params.append(stage)
    rows = conn.execute(
        f"SELECT reason, COUNT(*) FROM scan_errors WHERE 1 = 1{where} GROUP BY reason ORDER BY 2 DESC", params
    )
    return {r[0]: r[1] for r in rows}


def formats_breakdown(conn: Any, shards: Sequence[str] | None = None) -> dict[str, int]:
    where, params = _shard_filter(shards, "shard")
    rows = conn.execute(
        f"SELECT COALESCE(format, 'unknown'), COUNT(*) FROM tracks WHERE 1 = 1{where} GROUP BY 1 ORDER BY 2 DESC",
        params,
    )
    return {r[0]: r[1] for r in rows}


def total_duration_s(conn: Any, shards: Sequence[str] | None = None) -> float:
    where, params = _shard_filter(shards, "shard")
    return float(conn.execute(f"SELECT COALESCE(SUM(duration_s), 0) FROM tracks WHERE 1 = 1{where}", params)
                 .fetchone()[0])


def duplicate_paths(conn: Any) -> list[str]:
    return [r[0] for r in conn.execute("SELECT path FROM tracks GROUP BY path HAVING COUNT(*) > 1")]


def tracks_missing_album_or_artist(conn: Any) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT t.track_id FROM tracks t LEFT JOIN albums al ON al.album_id = t.album_id "
        "WHERE al.album_id IS NULL OR NOT EXISTS "
        "(SELECT 1 FROM track_artists ta WHERE ta.track_id = t.track_id AND ta.role = 'main')"
    )]


def fallback_title_share(conn: Any) -> float:
    total, fallback = conn.execute("SELECT COUNT(*), COALESCE(SUM(title_from_fallback), 0) FROM tracks").fetchone()
    return (fallback / total) if total else 0.0


def cataloged_shards(conn: Any) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT shard FROM tracks ORDER BY shard")]



def shard_facts(conn: Any, shards: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per shard: files, tracks, problem files, analysed tracks and vectors (what a partition's metadata shows)."""
    facts = {shard: {"files": 0, "tracks": 0, "problem_files": 0, "analysed_tracks": 0, "vectors": 0}
             for shard in shards}
    if not shards:
        return facts
    marks = ",".join("?" * len(shards))
    queries = {
        "files": f"SELECT shard, COUNT(*) FROM files WHERE shard IN ({marks}) GROUP BY shard",
        "tracks": f"SELECT shard, COUNT(*) FROM tracks WHERE shard IN ({marks}) GROUP BY shard",
        "problem_files": f"SELECT shard, COUNT(*) FROM scan_errors WHERE shard IN ({marks}) GROUP BY shard",
        "analysed_tracks": f"SELECT t.shard, COUNT(*) FROM track_analysis a JOIN tracks t ON t.track_id = a.track_id"
                           f" WHERE t.shard IN ({marks}) GROUP BY t.shard",
        "vectors": f"SELECT t.shard, COUNT(*) FROM track_vectors v JOIN tracks t ON t.track_id = v.track_id"
                   f" WHERE t.shard IN ({marks}) GROUP BY t.shard",
    }
    for name, sql in queries.items():
        for shard, count in conn.execute(sql, list(shards)):
            facts[shard][name] = int(count)
    return facts
