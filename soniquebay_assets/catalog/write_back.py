"""Repository for tag write-back: which tracks to write and what the catalog knows about them, the run and journal
rows that let `write-tags --undo` restore what was there, and the file facts after a write."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from soniquebay_assets.catalog.db import id_set, rows_in
from soniquebay_assets.catalog.inventory import NOW
from soniquebay_assets.domain.tag_writing import TrackFacts, credited_ids
from soniquebay_assets.stages import by_group

WRITE_BACK_STAGE = by_group("writeback").error_label  # scan_errors.stage of write-back problems


@dataclass(frozen=True)
class WriteTarget:
    """One cataloged track to write: where its file is and what the catalog knows about it."""

    track_id: int
    file_id: int
    path: str
    raw_path: bytes | None
    root: str
    shard: str
    format: str | None
    album_id: int
    facts: TrackFacts


# ---------------------------------------------------------------------------------------------- selection


def library_roots(conn: Any) -> list[str]:
    """The library roots the catalog holds files under."""
    return sorted(r[0] for r in conn.execute("SELECT DISTINCT root FROM files"))


def track_ids_under(conn: Any, paths: Sequence[str]) -> list[int]:
    """Tracks whose file is one of `paths` or lies in a folder among them (paths as the catalog stores them)."""
    found: set[int] = set()
    for path in paths:
        folder = path.rstrip("/")
        # "folder/" <= path < "folder0" ('0' follows '/'): every path inside the folder, on either backend
        rows = conn.execute("SELECT track_id FROM tracks WHERE path = ? OR (path >= ? AND path < ?)",
                            (folder, folder + "/", folder + "0")).fetchall()
        found.update(r[0] for r in rows)
    return sorted(found)


def album_ids_under(conn: Any, folder: str) -> set[int]:
    """The albums of the cataloged tracks in a folder and its sub-folders."""
    folder = folder.rstrip("/")
    return {r[0] for r in conn.execute("SELECT DISTINCT album_id FROM tracks WHERE path >= ? AND path < ?",
                                       (folder + "/", folder + "0"))}


def track_ids_of_albums(conn: Any, album_ids: Sequence[int]) -> list[int]:
    return sorted(r[0] for r in rows_in(conn, "SELECT track_id FROM tracks WHERE album_id IN ({})", list(album_ids)))


def file_ids_of_tracks(conn: Any, track_ids: Sequence[int]) -> list[int]:
    return sorted(r[0] for r in rows_in(conn, "SELECT file_id FROM tracks WHERE track_id IN ({})", list(track_ids)))


def album_ids_of_tracks(conn: Any, track_ids: Sequence[int]) -> list[int]:
    return sorted({r[0] for r in rows_in(conn, "SELECT album_id FROM tracks WHERE track_id IN ({})",
                                         list(track_ids))})


def track_ids_in_shards(conn: Any, shards: Sequence[str] | None) -> list[int]:
    """Every track of these shards (every track when `shards` is None)."""
    if shards is None:
        return [r[0] for r in conn.execute("SELECT track_id FROM tracks ORDER BY track_id")]
    return sorted(r[0] for r in rows_in(conn, "SELECT track_id FROM tracks WHERE shard IN ({})", list(shards)))


def missing_albums(conn: Any, album_ids: Sequence[int]) -> list[int]:
    known = {r[0] for r in rows_in(conn, "SELECT album_id FROM albums WHERE album_id IN ({})", list(album_ids))}
    return [a for a in album_ids if a not in known]


_TARGETS = """
SELECT t.track_id, t.file_id, f.path, f.raw_path, f.root, t.shard, t.format, t.album_id,
       CASE WHEN ta.status = 'ok' AND ta.analyzed_at >= t.audio_changed_at THEN 1 ELSE 0 END AS analysis_current,
       CASE WHEN ta.track_id IS NULL OR t.audio_changed_at > ta.analyzed_at OR ta.analysis_version < ?
            THEN 1 ELSE 0 END AS loudness_due,
       ta.bpm, ta.bpm_confidence, ta.key, ta.mode, ta.key_confidence,
       COALESCE(t.musicbrainz_recording_id, mb.recording_id, ac.recording_id) AS recording_id,
       COALESCE(al.musicbrainz_release_id, am.release_id) AS release_id,
       COALESCE(al.musicbrainz_release_group_id, am.release_group_id) AS release_group_id
FROM tracks t
JOIN files f ON f.file_id = t.file_id
JOIN albums al ON al.album_id = t.album_id
LEFT JOIN track_analysis ta ON ta.track_id = t.track_id
LEFT JOIN album_matches am ON am.album_id = t.album_id AND am.status = 'matched'
LEFT JOIN track_external mb ON mb.track_id = t.track_id AND mb.source = 'musicbrainz'
LEFT JOIN track_external ac ON ac.track_id = t.track_id AND ac.source = 'acoustid'
WHERE t.track_id IN ({ids})
ORDER BY f.path
"""

# An artist's id: as tagged, else as MusicBrainz gave it for the matched release.
_ARTIST_ID = "COALESCE(ar.musicbrainz_artist_id, ae.musicbrainz_artist_id)"
_ARTIST_EXTERNAL = "LEFT JOIN artist_external ae ON ae.artist_id = ar.artist_id AND ae.source = 'musicbrainz'"


def write_targets(conn: Any, track_ids: Sequence[int], replaygain: Mapping[int, Any] | None = None
                  ) -> list[WriteTarget]:
    """The tracks to write, by path, with their facts. `replaygain` (track id -> catalog.analysis.ReplayGain, as
    `replaygain_for_tracks` gives it) is the one source of ReplayGain: a track it leaves out, or whose album
    has no album gain yet, gets none (track and album values go together), with the reason."""
    from soniquebay_assets.domain.analysis.analyze import PART_VERSIONS

    if not track_ids:
        return []
    ids, param = id_set(conn, track_ids)
    rows = conn.execute(_TARGETS.format(ids=ids), (PART_VERSIONS["loudness"], param)).fetchall()
    track_artists: dict[int, list[tuple[str, str | None]]] = {}
    for track_id, name, mbid in conn.execute(
            f"SELECT ta.track_id, ar.name, {_ARTIST_ID} FROM track_artists ta JOIN artists ar "
            f"ON ar.artist_id = ta.artist_id {_ARTIST_EXTERNAL} WHERE ta.track_id IN ({ids}) "
            "ORDER BY ta.track_id, ta.position", (param,)):
        track_artists.setdefault(track_id, []).append((name, mbid))
    album_ids = sorted({r[7] for r in rows})
    album_artists: dict[int, list[tuple[str, str | None]]] = {}
    if album_ids:
        albums, album_param = id_set(conn, album_ids)
        for album_id, name, mbid in conn.execute(
                f"SELECT aa.album_id, ar.name, {_ARTIST_ID} FROM album_artists aa JOIN artists ar "
                f"ON ar.artist_id = aa.artist_id {_ARTIST_EXTERNAL} WHERE aa.album_id IN ({albums}) "
                "ORDER BY aa.album_id, aa.position", (album_param,)):
            album_artists.setdefault(album_id, []).append((name, mbid))
    targets = []
    for row in rows:
        (track_id, file_id, path, raw_path, root, shard, fmt, album_id, current, loudness_due, bpm, bpm_conf, key,
         mode, key_conf, recording, release, group) = tuple(row)
        analysed = bool(current)
        loudness, note = _replaygain_of(replaygain, track_id, bool(loudness_due))
        facts = TrackFacts(
            track_id,
            replaygain_track_gain=loudness[0], replaygain_track_peak=loudness[1],
            replaygain_album_gain=loudness[2], replaygain_album_peak=loudness[3], replaygain_note=note,
            bpm=bpm if analysed else None, bpm_confidence=bpm_conf,
            key=key if analysed else None, mode=mode, key_confidence=key_conf,
            musicbrainz_recording_id=recording, musicbrainz_release_id=release,
            musicbrainz_release_group_id=group,
            musicbrainz_artist_ids=credited_ids(track_artists.get(track_id, [])),
            musicbrainz_album_artist_ids=credited_ids(album_artists.get(album_id, [])),
        )
        raw = bytes(raw_path) if raw_path is not None else None
        targets.append(WriteTarget(track_id, file_id, path, raw, root, shard, fmt, album_id, facts))
    return targets


NOT_MEASURED_YET = "not measured yet (re-run enrichment)"
ALBUM_NOT_MEASURED_YET = "album not measured as a whole yet (re-run enrichment)"


def _replaygain_of(replaygain: Mapping[int, Any] | None, track_id: int, due: bool
                   ) -> tuple[tuple[float | None, ...], str | None]:
    """(track gain, track peak, album gain, album peak), all or none, and why none."""
    nothing = (None, None, None, None)
    if replaygain is None:
        return nothing, None
    measured = replaygain.get(track_id)
    if measured is None:  # not (re-)measured by the current meter, or nothing to measure (silence, < 0.4 s)
        return nothing, NOT_MEASURED_YET if due else None
    if measured.album_gain_db is None:  # its album is not gated over all its tracks as they are now
        return nothing, ALBUM_NOT_MEASURED_YET
    return (measured.track_gain_db, measured.track_peak, measured.album_gain_db, measured.album_peak), None


def album_cover_rows(conn: Any, album_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Per album: title, album artist, the stored cover (path relative to the covers folder, mime) if any, and
    every track path with its raw path (to find the folders)."""
    if not album_ids:
        return []
    albums, param = id_set(conn, album_ids)
    out: dict[int, dict[str, Any]] = {}
    for album_id, title, artist, cover, mime in conn.execute(
            f"SELECT al.album_id, al.title, al.album_artist, c.path, c.mime FROM albums al LEFT JOIN covers c "
            f"ON c.entity_type = 'album' AND c.entity_id = al.album_id WHERE al.album_id IN ({albums}) "
            "ORDER BY al.album_id", (param,)):
        out[album_id] = {"album_id": album_id, "title": title, "album_artist": artist, "cover_path": cover,
                         "mime": mime, "tracks": []}
    for album_id, path, raw_path, root in conn.execute(
            f"SELECT t.album_id, f.path, f.raw_path, f.root FROM tracks t JOIN files f ON f.file_id = t.file_id "
            f"WHERE t.album_id IN ({albums}) ORDER BY f.path", (param,)):
        out[album_id]["tracks"].append((path, bytes(raw_path) if raw_path is not None else None, root))
    return list(out.values())


# ---------------------------------------------------------------------------------------------- runs, journal


def start_run(conn: Any, action: str, origin: str, groups: Iterable[str], options: Mapping[str, Any]) -> int:
    row = conn.execute("INSERT INTO tag_write_runs(action, origin, groups, options) VALUES (?, ?, ?, ?) "
                       "RETURNING run_id", (action, origin, json.dumps(sorted(groups)),
                                            json.dumps(options, sort_keys=True))).fetchone()
    return int(row[0])


def finish_run(conn: Any, run_id: int, stats: Mapping[str, Any]) -> None:
    conn.execute(f"UPDATE tag_write_runs SET finished_at = {NOW}, stats = ? WHERE run_id = ?",
                 (json.dumps(stats, default=str), run_id))


def journal_pending(conn: Any, run_id: int, *, kind: str, path: str, changes: Sequence[Mapping[str, Any]] = (),
                    file_id: int | None = None, album_id: int | None = None, fmt: str | None = None,
                    sha256: str | None = None) -> int:
    """Record a write about to happen (before the file is renamed into place); returns the entry id."""
    row = conn.execute(
        "INSERT INTO tag_write_journal(run_id, kind, file_id, album_id, path, format, changes, sha256) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING entry_id",
        (run_id, kind, file_id, album_id, path, fmt, json.dumps(list(changes)), sha256)).fetchone()
    return int(row[0])


def mark_written(conn: Any, entry_id: int, *, size: int | None = None, mtime_ns: int | None = None,
                 changes: Sequence[Mapping[str, Any]] | None = None) -> None:
    """Confirm a write; `changes` replaces the recorded ones (the values as they read back from the file)."""
    conn.execute(f"UPDATE tag_write_journal SET state = 'written', size_after = ?, mtime_ns_after = ?, "
                 f"written_at = {NOW}, changes = COALESCE(?, changes) WHERE entry_id = ?",
                 (size, mtime_ns, json.dumps(list(changes)) if changes is not None else None, entry_id))


def drop_entry(conn: Any, entry_id: int) -> None:
    """A pending write that never reached the file."""
    conn.execute("DELETE FROM tag_write_journal WHERE entry_id = ? AND state = 'pending'", (entry_id,))


def mark_undone(conn: Any, entry_id: int, undo_run_id: int) -> None:
    conn.execute(f"UPDATE tag_write_journal SET state = 'undone', undone_at = {NOW}, undone_by = ? "
                 "WHERE entry_id = ?", (undo_run_id, entry_id))


def record_file_facts(conn: Any, file_id: int, *, size: int, fingerprint: str) -> None:
    """After our own write: the file's new size and content fingerprint, so that the next scan re-reads its
    tags (its mtime is left as last inventoried: the walk sees it changed) and the catalog stage finds the
    audio identity unchanged (no re-analysis), and a move before that scan is still followed."""
    conn.execute("UPDATE files SET size = ?, fingerprint = ? WHERE file_id = ?", (size, fingerprint, file_id))
    conn.execute("UPDATE tracks SET fingerprint = ? WHERE file_id = ?", (fingerprint, file_id))


@dataclass(frozen=True)
class JournalEntry:
    entry_id: int
    run_id: int
    kind: str
    file_id: int | None
    album_id: int | None
    path: str  # the cover file, or the audio file's current path (it may have moved since)
    raw_path: bytes | None
    root: str | None
    shard: str | None
    format: str | None
    changes: list[dict[str, Any]]
    sha256: str | None
    state: str


_ENTRY_COLUMNS = ("SELECT j.entry_id, j.run_id, j.kind, j.file_id, j.album_id, COALESCE(f.path, j.path), f.raw_path, "
                  "f.root, f.shard, j.format, j.changes, j.sha256, j.state FROM tag_write_journal j "
                  "LEFT JOIN files f ON f.file_id = j.file_id")


def _entries(rows: Iterable[Any]) -> list[JournalEntry]:
    out = []
    for r in rows:
        values = tuple(r)
        out.append(JournalEntry(values[0], values[1], values[2], values[3], values[4], values[5],
                                bytes(values[6]) if values[6] is not None else None, values[7], values[8], values[9],
                                json.loads(values[10]), values[11], values[12]))
    return out


def pending_entries(conn: Any) -> list[JournalEntry]:
    """Writes recorded but never confirmed (a run killed between recording and confirming)."""
    return _entries(conn.execute(f"{_ENTRY_COLUMNS} WHERE j.state = 'pending' ORDER BY j.entry_id"))


def latest_undoable_run(conn: Any) -> int | None:
    row = conn.execute("SELECT MAX(run_id) FROM tag_write_journal WHERE state = 'written'").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def undoable_entries(conn: Any, *, run_id: int | None = None, file_ids: Sequence[int] | None = None,
                     album_ids: Sequence[int] | None = None) -> list[JournalEntry]:
    """Written entries, newest first: of one run, of some files (and covers of some albums), or both."""
    sql, params = f"{_ENTRY_COLUMNS} WHERE j.state = 'written'", []
    if run_id is not None:
        sql += " AND j.run_id = ?"
        params.append(run_id)
    if file_ids is not None or album_ids is not None:
        files, file_param = id_set(conn, list(file_ids or []))
        albums, album_param = id_set(conn, list(album_ids or []))
        sql += f" AND (j.file_id IN ({files}) OR (j.kind = 'cover' AND j.album_id IN ({albums})))"
        params += [file_param, album_param]
    return _entries(conn.execute(sql + " ORDER BY j.entry_id DESC", params))


def list_runs(conn: Any, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs with how many of their entries are still in the files."""
    rows = conn.execute(
        "SELECT r.run_id, r.action, r.origin, r.groups, r.started_at, r.finished_at, r.stats, "
        "(SELECT COUNT(*) FROM tag_write_journal j WHERE j.run_id = r.run_id AND j.state = 'written') "
        "FROM tag_write_runs r ORDER BY r.run_id DESC LIMIT ?", (limit,)).fetchall()
    return [{"run_id": r[0], "action": r[1], "origin": r[2], "groups": json.loads(r[3]), "started_at": r[4],
             "finished_at": r[5], "stats": json.loads(r[6]), "entries_in_files": r[7]} for r in rows]
