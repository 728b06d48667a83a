"""Read side for the HTTP API and its pages: filtered, sorted, cursor-paged artists, albums and tracks, details
fetched by id in one query per page, cover files, and the small library summary the pages draw.

Paging is keyset ("seek") paging: a cursor holds the sort values of the last row returned, so the next page is
a range read that stays as cheap on page 1,000 as on page 1 and never skips or repeats a row when rows are added
meanwhile. Each page is two statements: the ids in order (sort columns and filters only), then the rows of those
ids with every field (per-row subqueries run for the page, not for the whole table).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from soniquebay_assets.catalog import analysis as _analysis
from soniquebay_assets.catalog import external as _external
from soniquebay_assets.catalog.db import rows_in
from soniquebay_assets.domain import embedding_text as et
from soniquebay_assets.domain.albums import name_key
from soniquebay_assets.domain.genres import normalize_genre

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
COVER_ENTITY_TYPES = ("album", "artist", "track")  # a track shows its album's cover


class BadCursor(ValueError):
    """A cursor that this listing and sort did not hand out (or that was altered)."""


class BadFilter(ValueError):
    """A filter value that cannot match anything as written; the message says what to write."""


@dataclass(frozen=True)
class Page:
    """One page of a listing: the rows in order, the cursor of the last one, and whether more follow."""

    rows: list[dict[str, Any]]
    end_cursor: str | None
    has_next_page: bool
    page_size: int


@dataclass(frozen=True)
class TrackFilter:
    """Track listing filters; None or empty means no rule. Text matches title, track artist, album or album artist."""

    text: str | None = None
    genre: str | None = None
    year_min: int | None = None
    year_max: int | None = None
    bpm_min: float | None = None
    bpm_max: float | None = None
    key: str | None = None               # "A minor", "Am", "F#", "8A": the analysed key, as its Camelot code
    compatible_keys: bool = False        # with key: also the Camelot neighbours (same number +-1, relative)
    moods: tuple[str, ...] = ()          # mood tags every track must carry (happy, relaxed, energetic, ...)
    match_status: str | None = None      # the album's MusicBrainz match: tagged, matched, candidates, ...
    album_id: int | None = None
    artist_id: int | None = None         # credited on the track (main or featured)


@dataclass(frozen=True)
class AlbumFilter:
    text: str | None = None              # title or album artist
    match_status: str | None = None
    year_min: int | None = None
    year_max: int | None = None
    artist_id: int | None = None         # heading the album
    has_cover: bool | None = None


@dataclass(frozen=True)
class ArtistFilter:
    text: str | None = None


@dataclass(frozen=True)
class _SortKey:
    expr: str
    nullable: bool = False


# Sort name -> keys (the id is always the last key, so the order is total and cursors are exact).
_BPM = _analysis.TRACK_LISTING_COLUMNS["bpm"]
TRACK_SORTS: dict[str, tuple[_SortKey, ...]] = {
    "ID": (),
    "TITLE": (_SortKey("t.title"),),
    # index tracks_by_artist (migration 0014): an artist's albums in catalog order, discs and tracks in order
    "ARTIST": (_SortKey("t.artist_display"), _SortKey("t.album_id"), _SortKey("COALESCE(t.disc_number, 0)"),
               _SortKey("COALESCE(t.track_number, 0)")),
    "ALBUM": (_SortKey("al.title"), _SortKey("t.album_id"), _SortKey("COALESCE(t.disc_number, 0)"),
              _SortKey("COALESCE(t.track_number, 0)")),
    "YEAR": (_SortKey("t.year", True),),
    "BPM": (_SortKey(_BPM, True),),
    "DURATION": (_SortKey("t.duration_s", True),),
    "ADDED": (_SortKey("t.created_at"),),
}
ALBUM_SORTS: dict[str, tuple[_SortKey, ...]] = {
    "ID": (),
    "ARTIST": (_SortKey("al.album_artist"), _SortKey("al.title")),
    "TITLE": (_SortKey("al.title"),),
    "YEAR": (_SortKey("al.year", True),),
    "ADDED": (_SortKey("al.created_at"),),
}
ARTIST_SORTS: dict[str, tuple[_SortKey, ...]] = {
    "ID": (),
    "NAME": (_SortKey("ar.name"),),
}

_MATCH_STATUS_SQL = _external.TRACK_LISTING_COLUMNS["match_status"]  # over `al` and `am`
_CAMELOT_SQL = _analysis.TRACK_LISTING_COLUMNS["camelot"]


# ------------------------------------------------------------------------------------------ cursors


def encode_cursor(listing: str, sort: str, descending: bool, values: Sequence[Any]) -> str:
    raw = json.dumps([listing, sort, int(descending), list(values)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, listing: str, sort: str, descending: bool, width: int) -> list[Any]:
    """The sort values a cursor holds; BadCursor unless it came from this listing, sort and direction."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8"))
        name, cursor_sort, cursor_desc, values = data
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise BadCursor("this cursor is not one the API handed out: pass pageInfo.endCursor unchanged") from None
    if (name, cursor_sort, bool(cursor_desc)) != (listing, sort, descending):
        raise BadCursor(f"this cursor belongs to another listing or sort ({name} by {cursor_sort}"
                        f"{' descending' if cursor_desc else ''}): ask the first page again with the new sort")
    if not isinstance(values, list) or len(values) != width or not all(
            v is None or isinstance(v, int | float | str) for v in values):
        raise BadCursor("this cursor is damaged: pass pageInfo.endCursor unchanged")
    return values


def _sort_columns(keys: Sequence[_SortKey], id_expr: str, descending: bool) -> list[str]:
    """The row-value columns of a sort: a nullable key becomes (is-null flag, value) so NULLs sort last both ways."""
    columns = []
    for key in keys:
        if key.nullable:
            flag = f"(CASE WHEN {key.expr} IS NULL THEN {0 if descending else 1} ELSE {1 if descending else 0} END)"
            columns += [flag, f"COALESCE({key.expr}, 0)"]
        else:
            columns.append(key.expr)
    columns.append(id_expr)
    return columns


def _paged(conn: Any, *, listing: str, select_from: str, where: list[str], params: list[Any],
           keys: Sequence[_SortKey], id_expr: str, sort: str, descending: bool, first: int | None,
           after: str | None) -> tuple[list[int], str | None, bool, int]:
    """(ids in order, end cursor, has next page, page size) of one keyset page."""
    size = clamp_page_size(first)
    columns = _sort_columns(keys, id_expr, descending)
    where, params = list(where), list(params)
    if after:
        values = decode_cursor(after, listing, sort, descending, len(columns))
        where.append(f"({', '.join(columns)}) {'<' if descending else '>'} ({', '.join('?' * len(columns))})")
        params += values
    direction = " DESC" if descending else ""
    sql = (f"SELECT {', '.join(columns)} {select_from}"
           f"{' WHERE ' + ' AND '.join(where) if where else ''}"
           f" ORDER BY {', '.join(c + direction for c in columns)} LIMIT ?")
    rows = conn.execute(sql, [*params, size + 1]).fetchall()
    more = len(rows) > size
    rows = rows[:size]
    cursor = encode_cursor(listing, sort, descending, list(rows[-1])) if rows else after
    return [int(r[-1]) for r in rows], cursor, more, size


def _page(conn: Any, details, **paging: Any) -> Page:
    """A keyset page (see _paged) with each row's details fetched by id in one query."""
    ids, cursor, more, size = _paged(conn, **paging)
    found = details(conn, ids)
    return Page([found[i] for i in ids if i in found], cursor, more, size)


def _count(conn: Any, select_from: str, where: list[str], params: list[Any]) -> int:
    return int(conn.execute(f"SELECT COUNT(*) {select_from}{' WHERE ' + ' AND '.join(where) if where else ''}",
                            params).fetchone()[0])


def clamp_page_size(first: int | None) -> int:
    """The page size served: `first` within 1..MAX_PAGE_SIZE (default DEFAULT_PAGE_SIZE)."""
    if first is None:
        return DEFAULT_PAGE_SIZE
    return max(1, min(int(first), MAX_PAGE_SIZE))


def _like(text: str) -> str:
    escaped = text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _text_rule(text: str | None, columns: Sequence[str]) -> tuple[list[str], list[Any]]:
    if not text or not text.strip():
        return [], []
    pattern = _like(text)
    return ["(" + " OR ".join(f"lower({c}) LIKE ? ESCAPE '\\'" for c in columns) + ")"], [pattern] * len(columns)


def _check_sort(sort: str, sorts: dict[str, Any]) -> tuple[_SortKey, ...]:
    if sort not in sorts:
        raise BadFilter(f"unknown sort {sort!r}: choose one of {', '.join(sorts)}")
    return sorts[sort]


def _check_status(status: str | None) -> None:
    if status is not None and status not in _external.MATCH_STATUSES:
        raise BadFilter(f"match status {status!r}: choose one of {', '.join(_external.MATCH_STATUSES)}")


# ------------------------------------------------------------------------------------------ tracks


def _track_rules(filters: TrackFilter) -> tuple[list[str], list[Any], set[str]]:
    """WHERE clauses, their parameters and the joins they need ('analysis', 'match')."""
    where, params = _text_rule(filters.text, ("t.title", "t.artist_display", "al.title", "al.album_artist"))
    joins: set[str] = set()
    if filters.genre and filters.genre.strip():
        normalized = normalize_genre(filters.genre) or filters.genre.strip()
        where.append("(EXISTS (SELECT 1 FROM track_genres tg JOIN genres g ON g.genre_id = tg.genre_id"
                     " WHERE tg.track_id = t.track_id AND g.name_key = ?) OR EXISTS (SELECT 1 FROM"
                     " track_genres_normalized gn WHERE gn.track_id = t.track_id AND gn.genre = ?))")
        params += [name_key(filters.genre), normalized]
    for value, rule in ((filters.year_min, "t.year >= ?"), (filters.year_max, "t.year <= ?")):
        if value is not None:
            where.append(rule)
            params.append(int(value))
    for value, op in ((filters.bpm_min, ">="), (filters.bpm_max, "<=")):
        if value is not None:
            where.append(f"({_BPM}) {op} ?")
            params.append(float(value))
            joins.add("analysis")
    if filters.key and filters.key.strip():
        code = et.camelot_code(filters.key, None, filters.key)
        if code is None:
            raise BadFilter(f"key {filters.key!r} is not a key: write e.g. 'A minor', 'F#m', 'Bb' or '8A'")
        codes = et.compatible_camelot(code) if filters.compatible_keys else [code]
        where.append(f"({_CAMELOT_SQL}) IN ({','.join('?' * len(codes))})")
        params += codes
        joins.add("analysis")
    for mood in dict.fromkeys(m.strip().lower() for m in filters.moods if m and m.strip()):
        where.append("EXISTS (SELECT 1 FROM track_mood_tags mt WHERE mt.track_id = t.track_id AND mt.tag = ?)")
        params.append(mood)
    if filters.match_status is not None:
        _check_status(filters.match_status)
        where.append(f"({_MATCH_STATUS_SQL}) = ?")
        params.append(filters.match_status)
        joins.add("match")
    if filters.album_id is not None:
        where.append("t.album_id = ?")
        params.append(int(filters.album_id))
    if filters.artist_id is not None:
        where.append("EXISTS (SELECT 1 FROM track_artists fa WHERE fa.track_id = t.track_id AND fa.artist_id = ?)")
        params.append(int(filters.artist_id))
    return where, params, joins


def _track_from(joins: set[str]) -> str:
    sql = "FROM tracks t JOIN albums al ON al.album_id = t.album_id"
    if "analysis" in joins:
        sql += " " + " ".join(_analysis.TRACK_LISTING_JOINS)
    if "match" in joins:
        sql += " " + " ".join(_external.TRACK_LISTING_JOINS)
    return sql


def track_page(conn: Any, filters: TrackFilter | None = None, *, sort: str = "ARTIST", descending: bool = False,
               first: int | None = None, after: str | None = None) -> Page:
    """One page of tracks matching `filters` in `sort` order, after the row `after` points at."""
    filters = filters or TrackFilter()
    keys = _check_sort(sort, TRACK_SORTS)
    where, params, joins = _track_rules(filters)
    if sort == "BPM":
        joins.add("analysis")
    return _page(conn, tracks_by_id, listing="tracks", select_from=_track_from(joins), where=where, params=params,
                 keys=keys, id_expr="t.track_id", sort=sort, descending=descending, first=first, after=after)


def track_count(conn: Any, filters: TrackFilter | None = None) -> int:
    where, params, joins = _track_rules(filters or TrackFilter())
    return _count(conn, _track_from(joins), where, params)


_TRACK_COLUMNS = (
    "t.track_id, t.title, t.artist_display, t.album_id, al.title AS album_title, al.album_artist, t.track_number, "
    "t.track_total, t.disc_number, t.disc_total, t.year, t.duration_s, t.format, t.codec, t.bitrate, "
    "t.sample_rate, t.channels, t.bit_depth, t.path, t.musicbrainz_recording_id, t.isrc, t.composer, t.label, "
    "t.quality_score, t.title_from_fallback, t.created_at, t.bpm_tag, t.key_tag, "
    "(SELECT json_group_array(name) FROM (SELECT ar.name FROM track_artists ta JOIN artists ar USING (artist_id) "
    " WHERE ta.track_id = t.track_id AND ta.role = 'main' ORDER BY ta.position) AS names) AS artists_json, "
    "(SELECT json_group_array(name) FROM (SELECT ar.name FROM track_artists ta JOIN artists ar USING (artist_id) "
    " WHERE ta.track_id = t.track_id AND ta.role = 'featured' ORDER BY ta.position) AS names) AS featured_json, "
    "(SELECT json_group_array(name) FROM (SELECT g.name FROM track_genres tg JOIN genres g USING (genre_id) "
    " WHERE tg.track_id = t.track_id ORDER BY tg.position) AS names) AS genres_json, "
    "(SELECT json_group_array(tag) FROM (SELECT mt.tag FROM track_mood_tags mt WHERE mt.track_id = t.track_id "
    " ORDER BY mt.tag) AS tags) AS mood_tags_json"
)
_MOODS = ("happy", "sad", "aggressive", "relaxed", "party")
# The listing's columns, moods as five plain columns (a JSON object per row costs a parse per row).
_TRACK_EXTRA = {k: v for k, v in _analysis.TRACK_LISTING_COLUMNS.items() if k != "moods"}
_TRACK_EXTRA.update({f"mood_{m}": f"ta.mood_{m}" for m in _MOODS})
_TRACK_EXTRA.update(_external.TRACK_LISTING_COLUMNS)
_TRACK_JOINS = " ".join([*_analysis.TRACK_LISTING_JOINS, *_external.TRACK_LISTING_JOINS])
_JSON_LIST_FIELDS = {"artists_json": "artists", "featured_json": "featured_artists", "genres_json": "genres",
                     "mood_tags_json": "mood_tags", "genres_normalized": "genres_normalized"}


_TRACKS_BY_ID = (f"SELECT {_TRACK_COLUMNS}{''.join(f', {expr} AS {name}' for name, expr in _TRACK_EXTRA.items())} "
                 f"FROM tracks t JOIN albums al ON al.album_id = t.album_id {_TRACK_JOINS} "
                 "WHERE t.track_id IN ({})")


def _json_list(value: Any) -> list:
    """A JSON array column as a list: SQLite hands text (most hold one plain name: read without the parser),
    PostgreSQL's json values arrive decoded already."""
    if not isinstance(value, str):
        return value or []
    if value in ("", "[]"):
        return []
    if value.startswith('["') and value.endswith('"]') and value.count('"') == 2 and "\\" not in value:
        return [value[2:-2]]
    return json.loads(value)


def tracks_by_id(conn: Any, track_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Every field of the given tracks (tags, the analysed-or-tagged tempo and key, moods, match status)."""
    ids = list(dict.fromkeys(int(i) for i in track_ids))
    if not ids:
        return {}
    rows = rows_in(conn, _TRACKS_BY_ID, ids)
    if not rows:
        return {}
    names = list(rows[0].keys())
    out = {}
    for row in rows:
        item = dict(zip(names, row, strict=True))
        for raw, name in _JSON_LIST_FIELDS.items():
            item[name] = _json_list(item.pop(raw))
        moods = {m: item.pop(f"mood_{m}") for m in _MOODS}
        item["moods"] = moods if moods["happy"] is not None else None
        item["title_from_fallback"] = bool(item["title_from_fallback"])
        out[int(item["track_id"])] = item
    return out


# Measured values as the API shows them: the loudness stage's gating-block histogram is its working data, the
# learned tags (JSON) and audio embedding are not single numbers.
ANALYSIS_FIELDS = tuple(c for c in _analysis.ANALYSIS_COLUMNS
                        if c not in ("loudness_histogram", "music_tags", "audio_embedding"))


def analysis_by_track(conn: Any, track_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The stored analysis row (every measured value, NULL where not measured) of each given track."""
    cols = ", ".join(f"a.{c}" for c in ANALYSIS_FIELDS)
    rows = rows_in(conn, f"SELECT a.track_id, a.analysis_version, a.analyzed_at, {cols} FROM track_analysis a "
                         "WHERE a.track_id IN ({})", list(track_ids))
    return {int(r["track_id"]): dict(r) for r in rows}


def external_by_track(conn: Any, track_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """What MusicBrainz and AcoustID said about each given track (one entry per source)."""
    rows = rows_in(conn, "SELECT track_id, source, recording_id, title, artist, score, fetched_at FROM track_external "
                         "WHERE track_id IN ({}) ORDER BY track_id, source", list(track_ids))
    out: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(int(row["track_id"]), []).append(dict(row))
    return out


def track_ids_of_albums(conn: Any, album_ids: Sequence[int]) -> dict[int, list[int]]:
    """Album id -> its track ids in disc and track order."""
    rows = rows_in(conn, "SELECT album_id, track_id FROM tracks WHERE album_id IN ({}) "
                         "ORDER BY album_id, COALESCE(disc_number, 1), COALESCE(track_number, 0), path",
                   list(album_ids))
    out: dict[int, list[int]] = {int(a): [] for a in album_ids}
    for album_id, track_id in rows:
        out[int(album_id)].append(int(track_id))
    return out


# ------------------------------------------------------------------------------------------ albums


def _album_rules(filters: AlbumFilter) -> tuple[list[str], list[Any], bool]:
    where, params = _text_rule(filters.text, ("al.title", "al.album_artist"))
    needs_match = False
    if filters.match_status is not None:
        _check_status(filters.match_status)
        where.append(f"({_MATCH_STATUS_SQL}) = ?")
        params.append(filters.match_status)
        needs_match = True
    for value, rule in ((filters.year_min, "al.year >= ?"), (filters.year_max, "al.year <= ?")):
        if value is not None:
            where.append(rule)
            params.append(int(value))
    if filters.artist_id is not None:
        where.append("EXISTS (SELECT 1 FROM album_artists fa WHERE fa.album_id = al.album_id AND fa.artist_id = ?)")
        params.append(int(filters.artist_id))
    if filters.has_cover is not None:
        where.append(("" if filters.has_cover else "NOT ") + "EXISTS (SELECT 1 FROM covers c WHERE "
                     "c.entity_type = 'album' AND c.entity_id = al.album_id)")
    return where, params, needs_match


def _album_from(needs_match: bool) -> str:
    return "FROM albums al" + (" LEFT JOIN album_matches am ON am.album_id = al.album_id" if needs_match else "")


def album_page(conn: Any, filters: AlbumFilter | None = None, *, sort: str = "ARTIST", descending: bool = False,
               first: int | None = None, after: str | None = None) -> Page:
    filters = filters or AlbumFilter()
    keys = _check_sort(sort, ALBUM_SORTS)
    where, params, needs_match = _album_rules(filters)
    return _page(conn, albums_by_id, listing="albums", select_from=_album_from(needs_match), where=where,
                 params=params, keys=keys, id_expr="al.album_id", sort=sort, descending=descending, first=first,
                 after=after)


def album_count(conn: Any, filters: AlbumFilter | None = None) -> int:
    where, params, needs_match = _album_rules(filters or AlbumFilter())
    return _count(conn, _album_from(needs_match), where, params)


def albums_by_id(conn: Any, album_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Albums with their tagged ids, MusicBrainz match (status derived as everywhere), candidates and counts."""
    ids = list(dict.fromkeys(int(i) for i in album_ids))
    if not ids:
        return {}
    rows = rows_in(conn, """
        SELECT al.album_id, al.title, al.album_artist, al.is_compilation, al.year, al.date, al.original_date,
               al.musicbrainz_release_id AS tagged_release_id,
               al.musicbrainz_release_group_id AS tagged_release_group_id, al.label AS tagged_label,
               al.date AS tagged_date, al.track_total, al.disc_total, al.created_at,
               am.status, am.decided_by, am.source, am.release_id, am.release_group_id, am.release_title,
               am.release_artist, am.label, am.release_date, am.release_track_count, am.score, am.candidates,
               am.fetched_at,
               (SELECT COUNT(*) FROM tracks t WHERE t.album_id = al.album_id) AS track_count,
               (SELECT SUM(t.duration_s) FROM tracks t WHERE t.album_id = al.album_id) AS duration_s,
               lo.loudness_lufs, lo.replaygain_album_gain_db, lo.replaygain_album_peak
        FROM albums al LEFT JOIN album_matches am ON am.album_id = al.album_id
        LEFT JOIN album_loudness lo ON lo.album_id = al.album_id
        WHERE al.album_id IN ({})""", ids)
    out = {}
    for row in rows:
        item = dict(row)
        item["match_status"] = _external.album_status(item)
        item["candidates"] = json.loads(item["candidates"]) if item["candidates"] else []
        item["is_compilation"] = bool(item["is_compilation"])
        out[int(item["album_id"])] = item
    return out


def artist_ids_of_albums(conn: Any, album_ids: Sequence[int]) -> dict[int, list[int]]:
    rows = rows_in(conn, "SELECT album_id, artist_id FROM album_artists WHERE album_id IN ({}) "
                         "ORDER BY album_id, position", list(album_ids))
    out: dict[int, list[int]] = {int(a): [] for a in album_ids}
    for album_id, artist_id in rows:
        out[int(album_id)].append(int(artist_id))
    return out


# ------------------------------------------------------------------------------------------ artists


def artist_page(conn: Any, filters: ArtistFilter | None = None, *, sort: str = "NAME", descending: bool = False,
                first: int | None = None, after: str | None = None) -> Page:
    filters = filters or ArtistFilter()
    keys = _check_sort(sort, ARTIST_SORTS)
    where, params = _text_rule(filters.text, ("ar.name",))
    return _page(conn, artists_by_id, listing="artists", select_from="FROM artists ar", where=where, params=params,
                 keys=keys, id_expr="ar.artist_id", sort=sort, descending=descending, first=first, after=after)


def artist_count(conn: Any, filters: ArtistFilter | None = None) -> int:
    where, params = _text_rule((filters or ArtistFilter()).text, ("ar.name",))
    return _count(conn, "FROM artists ar", where, params)


def artists_by_id(conn: Any, artist_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Artists with the tagged MusicBrainz id beside what MusicBrainz and Last.fm said, and their counts."""
    ids = list(dict.fromkeys(int(i) for i in artist_ids))
    if not ids:
        return {}
    rows = rows_in(conn, """
        SELECT ar.artist_id, ar.name, ar.musicbrainz_artist_id AS tagged_artist_id,
               mb.musicbrainz_artist_id AS found_artist_id, lf.summary, lf.listeners, lf.tags, lf.similar_artists,
               lf.url AS lastfm_url,
               (SELECT COUNT(*) FROM track_artists ta WHERE ta.artist_id = ar.artist_id) AS track_count,
               (SELECT COUNT(*) FROM album_artists aa WHERE aa.artist_id = ar.artist_id) AS album_count
        FROM artists ar
        LEFT JOIN artist_external mb ON mb.artist_id = ar.artist_id AND mb.source = 'musicbrainz'
        LEFT JOIN artist_external lf ON lf.artist_id = ar.artist_id AND lf.source = 'lastfm'
        WHERE ar.artist_id IN ({})""", ids)
    genres: dict[int, list[str]] = {}
    for artist_id, genre in rows_in(conn, "SELECT artist_id, genre FROM artist_genres WHERE artist_id IN ({}) "
                                          "ORDER BY artist_id, position", ids):
        genres.setdefault(int(artist_id), []).append(genre)
    out = {}
    for row in rows:
        item = dict(row)
        item["musicbrainz_artist_id"] = item["tagged_artist_id"] or item["found_artist_id"]
        item["tags"] = json.loads(item["tags"]) if item["tags"] else []
        item["similar_artists"] = json.loads(item["similar_artists"]) if item["similar_artists"] else []
        item["genres"] = genres.get(int(item["artist_id"]), [])
        out[int(item["artist_id"])] = item
    return out


def album_ids_of_artists(conn: Any, artist_ids: Sequence[int]) -> dict[int, list[int]]:
    """Artist id -> albums they head, by year then title."""
    rows = rows_in(conn, "SELECT aa.artist_id, al.album_id FROM album_artists aa JOIN albums al "
                         "ON al.album_id = aa.album_id WHERE aa.artist_id IN ({}) "
                         "ORDER BY aa.artist_id, al.year, al.title, al.album_id", list(artist_ids))
    out: dict[int, list[int]] = {int(a): [] for a in artist_ids}
    for artist_id, album_id in rows:
        out[int(artist_id)].append(int(album_id))
    return out


# ------------------------------------------------------------------------------------------ covers


@dataclass(frozen=True)
class CoverFile:
    """A stored picture to serve: its path relative to the covers store, its content hash and type."""

    relative_path: str
    sha256: str
    mime: str
    size: int


def covers_of(conn: Any, entity_type: str, entity_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """entity id -> its cover row (source, size, hash, thumbnail sizes) for albums or artists."""
    rows = rows_in(conn, "SELECT entity_id, source, sha256, mime, width, height, byte_size, thumbnails, fetched_at "
                         f"FROM covers WHERE entity_type = '{'artist' if entity_type == 'artist' else 'album'}' "
                         "AND entity_id IN ({})", list(entity_ids))
    out = {}
    for row in rows:
        item = dict(row)
        item["thumbnails"] = json.loads(item["thumbnails"] or "{}")
        out[int(item["entity_id"])] = item
    return out


def cover_file(conn: Any, entity_type: str, entity_id: int, size: int) -> CoverFile | None:
    """The stored file showing an album, artist or track (its album's cover) at `size` px (the original when the
    store made no thumbnail of that size); None when there is no cover."""
    if entity_type not in COVER_ENTITY_TYPES:
        return None
    if entity_type == "track":
        row = conn.execute("SELECT c.sha256, c.thumbnails, c.mime, c.path FROM tracks t JOIN covers c ON "
                           "c.entity_type = 'album' AND c.entity_id = t.album_id WHERE t.track_id = ?",
                           (int(entity_id),)).fetchone()
    else:
        row = conn.execute("SELECT sha256, thumbnails, mime, path FROM covers WHERE entity_type = ? AND entity_id = ?",
                           (entity_type, int(entity_id))).fetchone()
    if row is None:
        return None
    sha256, thumbnails, mime, original = row
    relative = json.loads(thumbnails or "{}").get(str(size)) or original
    if relative != original:
        mime = "image/jpeg"  # the store writes every thumbnail as JPEG
    return CoverFile(relative, sha256, mime, size)


# ------------------------------------------------------------------------------------------ library summary


def mood_tag_counts(conn: Any) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in conn.execute(
        "SELECT tag, COUNT(*) FROM track_mood_tags GROUP BY tag ORDER BY 2 DESC, 1")}


def mood_means(conn: Any) -> dict[str, float]:
    """Mean analysed mood scores over the library (happy, sad, aggressive, relaxed, party, energy, danceability)."""
    names = ("mood_happy", "mood_sad", "mood_aggressive", "mood_relaxed", "mood_party", "energy", "danceability")
    row = conn.execute(f"SELECT {', '.join(f'AVG({n})' for n in names)} FROM track_analysis").fetchone()
    return {n.removeprefix("mood_"): round(float(v), 4) for n, v in zip(names, row, strict=True) if v is not None}


@dataclass(frozen=True)
class LibrarySummary:
    """What the library looks like: counts, tempo histogram, keys with their Camelot codes, moods."""

    tracks: int
    albums: int
    artists: int
    analysed: int
    covered_albums: int
    bpm_histogram: dict[str, int] = field(default_factory=dict)
    keys: list[tuple[str, str, int]] = field(default_factory=list)
    mood_tags: dict[str, int] = field(default_factory=dict)
    mood_means: dict[str, float] = field(default_factory=dict)
    match_statuses: dict[str, int] = field(default_factory=dict)


def library_summary(conn: Any) -> LibrarySummary:
    one = lambda sql: int(conn.execute(sql).fetchone()[0])  # noqa: E731
    return LibrarySummary(
        tracks=one("SELECT COUNT(*) FROM tracks"), albums=one("SELECT COUNT(*) FROM albums"),
        artists=one("SELECT COUNT(*) FROM artists"), analysed=one("SELECT COUNT(*) FROM track_analysis"),
        covered_albums=one("SELECT COUNT(*) FROM covers WHERE entity_type = 'album'"),
        bpm_histogram=_analysis.bpm_histogram(conn), keys=_analysis.key_table(conn),
        mood_tags=mood_tag_counts(conn), mood_means=mood_means(conn), match_statuses=_external.match_counts(conn),
    )


def last_scan_finished_at(conn: Any) -> str | None:
    """When the last scan recorded in the catalog finished (ISO-8601 UTC), None when none did."""
    return conn.execute("SELECT MAX(finished_at) FROM scans").fetchone()[0]


def cover_counts(conn: Any) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in conn.execute("SELECT entity_type, COUNT(*) FROM covers GROUP BY entity_type")}

