"""Repository for catalog entities: idempotent upserts of artists, albums, tracks, credits and genres."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from soniquebay_assets.catalog.db import execute_rows, fetch_rows, id_set, rows_in
from soniquebay_assets.catalog.inventory import NOW
from soniquebay_assets.domain.albums import (
    VARIOUS_ARTISTS,
    AlbumIdentity,
    home_for_untagged,
    is_untagged_album_key,
    name_key,
)
from soniquebay_assets.domain.tag_model import TagRecord


@dataclass
class TrackWrite:
    """Everything the catalog needs to write one track, prepared by the pipeline."""

    file_id: int
    path: str
    shard: str
    size: int
    mtime_ns: int
    fingerprint: str | None
    tags: TagRecord
    album: AlbumIdentity
    album_folder: str
    credits: list[tuple[str, str]]  # (name, role)
    artist_display: str
    genres: list[str] = field(default_factory=list)


_ALBUM_UPSERT = (
    "INSERT INTO albums(album_key, title, album_artist, is_compilation, year, date, original_date, "
    "musicbrainz_release_id, musicbrainz_release_group_id, label, track_total, disc_total, folder, "
    "title_from_fallback) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(album_key) DO UPDATE SET title = excluded.title, "
    "album_artist = CASE WHEN excluded.album_artist != '' THEN excluded.album_artist ELSE albums.album_artist END, "
    "is_compilation = CASE WHEN excluded.is_compilation > albums.is_compilation THEN excluded.is_compilation "
    "ELSE albums.is_compilation END, "
    "year = COALESCE(excluded.year, albums.year), date = COALESCE(excluded.date, albums.date), "
    "original_date = COALESCE(excluded.original_date, albums.original_date), "
    "musicbrainz_release_group_id = COALESCE(excluded.musicbrainz_release_group_id, "
    "albums.musicbrainz_release_group_id), label = COALESCE(excluded.label, albums.label), "
    "track_total = COALESCE(excluded.track_total, albums.track_total), "
    "disc_total = CASE WHEN COALESCE(excluded.disc_total, 0) > COALESCE(albums.disc_total, 0) "
    "THEN COALESCE(excluded.disc_total, 0) ELSE COALESCE(albums.disc_total, 0) END, "
    f"title_from_fallback = excluded.title_from_fallback, updated_at = {NOW} RETURNING album_key, album_id"
)


class _Ids:
    """Per-batch state: each artist/genre/album is upserted once per batch, in as few statements as the album
    rules allow. The albums of the batch's folders and keys are read once and kept as the batch's own writes
    leave them; a new album has a provisional (negative) id until its upsert is sent."""

    def __init__(self) -> None:
        self.artists: dict[str, int] = {}
        self.genres: dict[str, int] = {}
        self.albums: dict[str, int] = {}
        self.resolved: dict[tuple[str, str, str | None], str] = {}
        self.wanted_artists: dict[str, tuple[str, str, str | None]] = {}  # name key -> first (name, key, mbid)
        self.wanted_genres: dict[str, tuple[str, str]] = {}
        self.album_artists: dict[int, list[tuple[str, int]]] = {}  # album id -> (artist name, position), last write
        self.folders: dict[str, list[list]] = {}  # folder -> its albums' [album_id, album_key, title], oldest first
        self.by_key: dict[str, list] = {}  # album key -> the same rows
        self.pending: list[tuple[list, tuple]] = []  # (album row, upsert parameters) not sent yet
        self.real_ids: dict[int, int] = {}  # provisional id -> album id
        self.provisional = 0

    def load_albums(self, conn: Any, folders: set[str], keys: set[str]) -> None:
        self.folders.update({f: [] for f in folders})
        found = {tuple(r) for r in rows_in(conn, "SELECT album_id, album_key, title, folder FROM albums "
                                                  "WHERE folder IN ({})", sorted(folders))}
        found |= {tuple(r) for r in rows_in(conn, "SELECT album_id, album_key, title, folder FROM albums "
                                                   "WHERE album_key IN ({})", sorted(keys))}
        for album_id, key, title, folder in sorted(found):
            self.by_key[key] = [album_id, key, title]
            if folder in self.folders:
                self.folders[folder].append(self.by_key[key])

    def upsert_album(self, key: str, title: str, folder: str, params: tuple) -> int:
        """Queue the upsert of album `key`; its id (provisional when the album is new)."""
        row = self.by_key.get(key)
        if row is None:
            self.provisional -= 1
            row = self.by_key[key] = [self.provisional, key, title]
            self.folders.setdefault(folder, []).append(row)  # the insert files it under this folder
        else:
            row[2] = title  # of what the upsert changes, the album rules read only the title
        self.pending.append((row, params))
        self.albums[key] = row[0]
        return row[0]

    def write_albums(self, conn: Any) -> None:
        """Send the queued album upserts, in order, and give new albums their ids."""
        if not self.pending:
            return
        returned = dict((r[0], r[1]) for r in fetch_rows(conn, _ALBUM_UPSERT, [p for _, p in self.pending]))
        for row, params in self.pending:
            album_id = returned[params[0]]
            if row[0] != album_id:
                self.real_ids[row[0]] = album_id
                if row[0] in self.album_artists:
                    self.album_artists[album_id] = self.album_artists.pop(row[0])
                row[0] = album_id
        self.albums = {key: self.real_id(album_id) for key, album_id in self.albums.items()}
        self.pending.clear()

    def real_id(self, album_id: int) -> int:
        return self.real_ids.get(album_id, album_id)

    def rekey(self, row: list, key: str) -> None:
        self.by_key.pop(row[1], None)
        row[1] = key
        self.by_key[key] = row

    def want_artist(self, name: str, mbid: str | None) -> None:
        key = name_key(name)
        if key not in self.artists and key not in self.wanted_artists:
            self.wanted_artists[key] = (name.strip(), key, mbid)

    def want_genre(self, name: str) -> None:
        key = name_key(name)
        if key not in self.genres and key not in self.wanted_genres:
            self.wanted_genres[key] = (name.strip(), key)

    def write_people(self, conn: Any) -> None:
        """Upsert the artists and genres asked for so far (the first spelling and MBID of each stand)."""
        self.artists.update((r[0], r[1]) for r in fetch_rows(
            conn,
            "INSERT INTO artists(name, name_key, musicbrainz_artist_id) VALUES (?, ?, ?) "
            "ON CONFLICT(name_key) DO UPDATE SET musicbrainz_artist_id = "
            "COALESCE(artists.musicbrainz_artist_id, excluded.musicbrainz_artist_id) RETURNING name_key, artist_id",
            list(self.wanted_artists.values())))
        self.genres.update((r[0], r[1]) for r in fetch_rows(
            conn,
            "INSERT INTO genres(name, name_key) VALUES (?, ?) ON CONFLICT(name_key) DO UPDATE SET name = genres.name "
            "RETURNING name_key, genre_id",
            list(self.wanted_genres.values())))
        self.wanted_artists.clear()
        self.wanted_genres.clear()

    def artist_id(self, name: str) -> int:
        return self.artists[name_key(name)]

    def genre_id(self, name: str) -> int:
        return self.genres[name_key(name)]


def _resolve_album_key(conn: Any, ids: _Ids, w: TrackWrite) -> str:
    """Keep a partly MusicBrainz-tagged album whole: same title in the same folder joins the MBID album."""
    album = w.album
    same_folder = ids.folders[w.album_folder]
    twins = [row for row in same_folder if name_key(row[2]) == name_key(album.title) and row[1] != album.key]
    if not album.key.startswith("mb:"):
        mb_twins = [row[1] for row in twins if row[1].startswith("mb:")]
        if len(mb_twins) == 1:
            return mb_twins[0]
        if is_untagged_album_key(album.key):
            candidates = [(row[1], _album_artist_keys(conn, row[0], ids)) for row in same_folder]
            return home_for_untagged(album.key, candidates, _main_artist(w)) or album.key
        return album.key
    # This track knows the release id: adopt albums made earlier from its untagged siblings.
    untagged_twins = [row for row in twins if not row[1].startswith("mb:")]
    if not untagged_twins:
        return album.key
    ids.write_albums(conn)  # the adoption below changes written albums
    existing = conn.execute("SELECT album_id FROM albums WHERE album_key = ?", (album.key,)).fetchone()
    for row in untagged_twins:
        if existing is None:
            conn.execute("UPDATE albums SET album_key = ? WHERE album_id = ?", (album.key, row[0]))
            ids.rekey(row, album.key)
            existing = (row[0],)
        else:
            conn.execute("UPDATE tracks SET album_id = ? WHERE album_id = ?", (existing[0], row[0]))
    return album.key


def _album_artist_keys(conn: Any, album_id: int, ids: _Ids | None = None) -> frozenset[str]:
    if ids is not None and album_id in ids.album_artists:  # rewritten by this batch, written at its end
        return frozenset(name_key(name) for name, _ in ids.album_artists[album_id])
    if album_id < 0:  # new in this batch and no album artist named
        return frozenset()
    return frozenset(r[0] for r in conn.execute(
        "SELECT ar.name_key FROM album_artists aa JOIN artists ar ON ar.artist_id = aa.artist_id "
        "WHERE aa.album_id = ?", (album_id,)))


def _main_artist(w: TrackWrite) -> str | None:
    return next((name for name, role in w.credits if role == "main"), None)


def _album_id(conn: Any, ids: _Ids, w: TrackWrite) -> int:
    cache_key = (w.album.key, w.album_folder, _main_artist(w))
    if cache_key not in ids.resolved:
        ids.resolved[cache_key] = _resolve_album_key(conn, ids, w)
    resolved = ids.resolved[cache_key]
    if resolved != w.album.key:
        w.album = replace(w.album, key=resolved)
    album = w.album
    if album.key in ids.albums:
        return ids.albums[album.key]
    t = w.tags
    album_id = ids.upsert_album(album.key, album.title, w.album_folder, (
        album.key, album.title, ", ".join(album.album_artists), int(album.is_compilation), t.year, t.date,
        t.original_date, t.musicbrainz_release_id, t.musicbrainz_release_group_id, t.label, t.track_total,
        t.disc_total, w.album_folder, int(album.title_from_fallback),
    ))
    if album.album_artists:
        mbids = [] if album.is_compilation else list(t.musicbrainz_album_artist_ids)
        ids.album_artists[album_id] = [(name, position) for position, name in enumerate(album.album_artists)]
        for position, name in enumerate(album.album_artists):
            ids.want_artist(name, mbids[position] if position < len(mbids) else None)
    return album_id


def _write_album_artists(conn: Any, ids: _Ids) -> None:
    """An album's artists as its last upsert in the batch named them (after write_people gave the ids)."""
    execute_rows(conn, "DELETE FROM album_artists WHERE album_id = ?", [(a,) for a in ids.album_artists])
    execute_rows(conn, "INSERT INTO album_artists(album_id, artist_id, position) VALUES (?, ?, ?) "
                       "ON CONFLICT DO NOTHING",
                 [(album_id, ids.artist_id(name), position) for album_id, named in ids.album_artists.items()
                  for name, position in named])


_TRACK_COLUMNS = (
    "file_id, path, shard, size, mtime_ns, fingerprint, format, codec, duration_s, bitrate, sample_rate, channels, "
    "bit_depth, title, title_from_fallback, artist_display, album_id, track_number, track_total, disc_number, "
    "disc_total, year, date, original_date, composer, musicbrainz_recording_id, musicbrainz_track_id, isrc, label, "
    "comment, compilation, bpm_tag, key_tag, replaygain_track_gain, replaygain_track_peak, replaygain_album_gain, "
    "replaygain_album_peak, has_embedded_picture, audio_ok, quality_score, fallbacks"
)
_UPDATE_SET = ", ".join(
    f"{c.strip()} = excluded.{c.strip()}" for c in _TRACK_COLUMNS.split(",") if c.strip() != "file_id"
)


def _track_row(w: TrackWrite, album_id: int) -> tuple:
    t, a = w.tags, w.tags.audio
    return (
        w.file_id, w.path, w.shard, w.size, w.mtime_ns, w.fingerprint, a.format, a.codec, a.duration_s, a.bitrate,
        a.sample_rate, a.channels, a.bit_depth, t.title or "", int("title" in t.fallbacks), w.artist_display,
        album_id, t.track_number, t.track_total, t.disc_number, t.disc_total, t.year, t.date, t.original_date,
        "; ".join(t.composers) or None, t.musicbrainz_recording_id, t.musicbrainz_track_id, t.isrc, t.label,
        t.comment, int(w.album.is_compilation), t.bpm, t.initial_key, t.replaygain_track_gain,
        t.replaygain_track_peak, t.replaygain_album_gain, t.replaygain_album_peak, int(t.has_embedded_picture),
        int(t.audio_ok), t.quality_score, "[]" if t.fallbacks == [] else json.dumps(t.fallbacks),
    )


def upsert_tracks(conn: Any, writes: Sequence[TrackWrite]) -> list[int]:
    """Write one batch (call inside a transaction); returns the track ids, in order."""
    ids = _Ids()
    ids.load_albums(conn, {w.album_folder for w in writes}, {w.album.key for w in writes})
    marks = ",".join("?" * len(_TRACK_COLUMNS.split(",")))
    album_ids = []
    for w in writes:
        album_ids.append(_album_id(conn, ids, w))
        artist_mbids = list(w.tags.musicbrainz_artist_ids)
        for pos, (name, role) in enumerate(w.credits):
            ids.want_artist(name, artist_mbids[pos] if role == "main" and pos < len(artist_mbids) else None)
        for genre in w.genres:
            ids.want_genre(genre)
    ids.write_albums(conn)
    ids.write_people(conn)
    _write_album_artists(conn, ids)
    rows = [_track_row(w, ids.real_id(album_id)) for w, album_id in zip(writes, album_ids, strict=True)]
    credits = [[(ids.artist_id(name), role, pos) for pos, (name, role) in enumerate(w.credits)] for w in writes]
    genres = [[(ids.genre_id(genre), pos) for pos, genre in enumerate(w.genres)] for w in writes]
    execute_rows(
        conn,
        f"INSERT INTO tracks({_TRACK_COLUMNS}) VALUES ({marks}) ON CONFLICT(file_id) DO UPDATE SET {_UPDATE_SET}, "
        f"tags_changed_at = {NOW}, "
        f"audio_changed_at = CASE WHEN tracks.fingerprint IS NOT DISTINCT FROM excluded.fingerprint THEN tracks.audio_changed_at "
        f"ELSE {NOW} END, updated_at = {NOW}",
        rows,
    )
    files, file_ids = id_set(conn, [w.file_id for w in writes])
    by_file = dict(conn.execute(f"SELECT file_id, track_id FROM tracks WHERE file_id IN ({files})", (file_ids,)))
    track_ids = [by_file[w.file_id] for w in writes]
    execute_rows(conn, "DELETE FROM track_artists WHERE track_id = ?", [(t,) for t in track_ids])
    execute_rows(
        conn, "INSERT INTO track_artists(track_id, artist_id, role, position) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(t, artist_id, role, pos) for t, rows_ in zip(track_ids, credits, strict=True) for artist_id, role, pos in rows_],
    )
    execute_rows(conn, "DELETE FROM track_genres WHERE track_id = ?", [(t,) for t in track_ids])
    execute_rows(
        conn, "INSERT INTO track_genres(track_id, genre_id, position) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        [(t, genre_id, pos) for t, rows_ in zip(track_ids, genres, strict=True) for genre_id, pos in rows_],
    )
    conn.execute(f"UPDATE files SET stage = 'cataloged' WHERE file_id IN ({files})", (file_ids,))
    return track_ids


def merge_untagged_albums(conn: Any, shards: Sequence[str]) -> int:
    """Move tracks of albums made from files without album-artist tag into their tagged twin (same title, same
    folder), whichever file was cataloged first; returns the number of tracks moved."""
    if not shards:
        return 0
    marks = ",".join("?" * len(shards))
    untagged = conn.execute(
        "SELECT DISTINCT al.album_id, al.album_key, al.folder FROM albums al JOIN tracks t ON t.album_id = al.album_id "
        f"WHERE al.album_key LIKE 'tag:|%' AND t.shard IN ({marks})", list(shards)).fetchall()
    moved = 0
    for album_id, key, folder in untagged:
        others = conn.execute("SELECT album_id, album_key FROM albums WHERE folder = ? AND album_id != ?",
                              (folder, album_id)).fetchall()
        if not others:
            continue
        id_of = {k: aid for aid, k in others}
        candidates = [(k, _album_artist_keys(conn, aid)) for aid, k in others]
        tracks = conn.execute(
            "SELECT t.track_id, ar.name FROM tracks t LEFT JOIN track_artists ta ON ta.track_id = t.track_id "
            "AND ta.role = 'main' AND ta.position = 0 LEFT JOIN artists ar ON ar.artist_id = ta.artist_id "
            "WHERE t.album_id = ?", (album_id,)).fetchall()
        for track_id, main_artist in tracks:
            home = home_for_untagged(key, candidates, main_artist)
            if home is None:
                continue
            conn.execute("UPDATE tracks SET album_id = ?, compilation = (SELECT is_compilation FROM albums "
                         "WHERE album_id = ?) WHERE track_id = ?", (id_of[home], id_of[home], track_id))
            moved += 1
    return moved


def refresh_album_artists(conn: Any) -> None:
    """Albums without a tagged album artist take their tracks' main artist, or Various Artists when they differ."""
    conn.execute(
        "UPDATE albums SET album_artist = ("
        " SELECT CASE WHEN COUNT(DISTINCT ta.artist_id) = 1 THEN MIN(ar.name) ELSE ? END"
        " FROM tracks t JOIN track_artists ta ON ta.track_id = t.track_id AND ta.role = 'main' AND ta.position = 0"
        " JOIN artists ar ON ar.artist_id = ta.artist_id WHERE t.album_id = albums.album_id)"
        " WHERE NOT EXISTS (SELECT 1 FROM album_artists aa WHERE aa.album_id = albums.album_id)"
        " AND EXISTS (SELECT 1 FROM tracks t WHERE t.album_id = albums.album_id)",
        (VARIOUS_ARTISTS,),
    )


def delete_orphans(conn: Any) -> dict[str, int]:
    """Drop albums with no track, then artists and genres nothing refers to."""
    removed = {}
    removed["albums"] = conn.execute(
        "DELETE FROM albums WHERE NOT EXISTS (SELECT 1 FROM tracks t WHERE t.album_id = albums.album_id)"
    ).rowcount
    removed["artists"] = conn.execute(
        "DELETE FROM artists WHERE NOT EXISTS (SELECT 1 FROM track_artists ta WHERE ta.artist_id = artists.artist_id)"
        " AND NOT EXISTS (SELECT 1 FROM album_artists aa WHERE aa.artist_id = artists.artist_id)"
    ).rowcount
    removed["genres"] = conn.execute(
        "DELETE FROM genres WHERE NOT EXISTS (SELECT 1 FROM track_genres tg WHERE tg.genre_id = genres.genre_id)"
    ).rowcount
    return removed


def artists_in_shards_cte(marks: str) -> str:
    """`WITH present AS (...)`: artists credited on a track, or heading an album, of the shards bound twice to
    `marks` (a list of `?`); later stages select their artists from it."""
    return f"""
        WITH present AS (
            SELECT ta.artist_id FROM track_artists ta JOIN tracks t ON t.track_id = ta.track_id
            WHERE t.shard IN ({marks})
            UNION
            SELECT aa.artist_id FROM album_artists aa JOIN tracks t ON t.album_id = aa.album_id
            WHERE t.shard IN ({marks})
        )"""
