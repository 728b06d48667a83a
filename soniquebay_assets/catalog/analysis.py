"""Repository for audio enrichment: which tracks need analysis, saving results, errors, genres, mood tags,
album loudness (ReplayGain album gain), and the summaries the UI shows (BPM histogram, key table)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from soniquebay_assets.catalog.db import id_set
from soniquebay_assets.catalog.inventory import NOW, clear_errors

ENRICH_STAGE = "enrich"
ENRICH_KIND = "enrichment"  # the deferred work kind its runs do

ANALYSIS_COLUMNS = (
    "status", "error", "bpm", "bpm_confidence", "beat_count", "key", "mode", "key_confidence", "camelot",
    "open_key", "loudness_lufs", "loudness_range_lu", "replaygain_track_gain_db", "replaygain_track_peak",
    "energy", "danceability", "acousticness", "instrumentalness", "mood_happy", "mood_sad", "mood_aggressive",
    "mood_relaxed", "mood_party", "spectral_centroid", "spectral_rolloff", "spectral_flatness",
    "zero_crossing_rate", "duration_s", "analyzed_seconds", "decoder", "seconds_spent", "sample_peak",
    "true_peak_dbtp", "loudness_histogram", "music_tags", "audio_embedding",
)

# Which value the catalog exposes: the analysed one when its confidence reaches these thresholds or when no
# tag exists; otherwise the tagged one (a DJ tool's tag beats a low-confidence estimate).
BPM_CONFIDENCE_THRESHOLD = 0.2
KEY_CONFIDENCE_THRESHOLD = 0.25


@dataclass(frozen=True)
class TrackToAnalyze:
    track_id: int
    path: str
    shard: str
    duration_s: float | None
    # analysis version of the results still valid for this track's audio; None: none are (never analysed,
    # audio changed, or failed), so every part is due
    stored_version: int | None = None


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


def tracks_to_analyze(conn: Any, shards: Sequence[str], *, current_version: int,
                      outdated_ids: Collection[int] | None = None,
                      retry_errors: bool = False) -> list[TrackToAnalyze]:
    """Tracks of `shards` never analysed or whose audio changed since (first), then those analysed by an older
    ANALYSIS_VERSION: all of them, or only `outdated_ids` when given (the ones a deferred run claimed); with
    retry_errors also failed ones."""
    if not shards:
        return []
    outdated = "1 = 1"
    params: list[Any] = [*shards, current_version]
    if outdated_ids is not None:
        subquery, param = id_set(conn, sorted(outdated_ids))
        outdated = f"t.track_id IN ({subquery})"
        params.append(param)
    sql = (
        "SELECT t.track_id, t.path, t.shard, t.duration_s, CASE WHEN ta.track_id IS NULL OR "
        "t.audio_changed_at > ta.analyzed_at OR ta.status = 'error' THEN NULL ELSE ta.analysis_version END "
        "FROM tracks t LEFT JOIN track_analysis ta ON ta.track_id = t.track_id "
        f"WHERE t.shard IN ({_marks(shards)}) AND (ta.track_id IS NULL OR t.audio_changed_at > ta.analyzed_at "
        f"OR (ta.analysis_version < ? AND {outdated}) "
        "OR (? = 1 AND ta.status = 'error')) ORDER BY t.shard, t.path"
    )
    rows = conn.execute(sql, [*params, int(retry_errors)]).fetchall()
    found = [TrackToAnalyze(r[0], r[1], r[2], r[3], r[4]) for r in rows]
    return sorted(found, key=lambda t: t.stored_version is not None)  # new and changed audio before re-measures


_OUTDATED = "ta.analysis_version < ?"  # failed ones included: a new version tries them once more


def outdated_count(conn: Any, shards: Sequence[str] | None, current_version: int) -> int:
    """Tracks of `shards` (None: all) whose analysis an older ANALYSIS_VERSION wrote (enrichment re-measures
    their outdated parts)."""
    if shards is not None and not shards:
        return 0
    where, params = _shard_where(shards)
    return conn.execute(
        f"SELECT COUNT(*) FROM track_analysis ta JOIN tracks t ON t.track_id = ta.track_id WHERE {_OUTDATED}{where}",
        [current_version, *params],
    ).fetchone()[0]


def outdated_shards(conn: Any, current_version: int) -> list[str]:
    """Shards holding a track whose analysis an older ANALYSIS_VERSION wrote."""
    return [r[0] for r in conn.execute(
        f"SELECT DISTINCT t.shard FROM track_analysis ta JOIN tracks t ON t.track_id = ta.track_id "
        f"WHERE {_OUTDATED} ORDER BY t.shard", [current_version])]


def enqueue_outdated(conn: Any, current_version: int, *, limit: int, now: float | None = None) -> int:
    """Queue up to `limit` tracks analysed by an older ANALYSIS_VERSION as low-priority enrichment work (behind
    new files), those without an enrichment item still open (a dead one stays dead). Returns how many."""
    from soniquebay_assets.catalog import deferred

    rows = conn.execute(
        "SELECT t.track_id, t.shard FROM track_analysis ta JOIN tracks t ON t.track_id = ta.track_id "
        f"WHERE {_OUTDATED} AND NOT EXISTS (SELECT 1 FROM deferred_work w WHERE w.kind = ? "
        "AND w.entity_type = 'track' AND w.entity_id = t.track_id AND w.state <> 'done') "
        "ORDER BY t.track_id LIMIT ?", [current_version, ENRICH_KIND, int(limit)]).fetchall()
    return deferred.enqueue(conn, ENRICH_KIND, "track", rows, priority="low", now=now) if rows else 0


def track_count(conn: Any, shards: Sequence[str]) -> int:
    if not shards:
        return 0
    return conn.execute(f"SELECT COUNT(*) FROM tracks WHERE shard IN ({_marks(shards)})", list(shards)).fetchone()[0]


def save_analyses(conn: Any, rows: Sequence[tuple[int, int, Mapping[str, Any]]],
                  columns: Sequence[str] = ANALYSIS_COLUMNS) -> None:
    """rows: (track_id, analysis_version, values by column name); upsert of `columns` (default all: a new row
    gets NULL in the others, an existing row keeps them), analyzed_at = now."""
    unknown = set(columns) - set(ANALYSIS_COLUMNS)
    if unknown:
        raise ValueError(f"not track_analysis columns: {sorted(unknown)}")
    cols = ", ".join(columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in ("analysis_version", "analyzed_at", *columns))
    # WHERE EXISTS: a track deleted by a concurrent rescan while it was being analysed is skipped, not a
    # foreign-key failure that would fail the whole batch
    sql = (
        f"INSERT INTO track_analysis (track_id, analysis_version, analyzed_at, {cols}) "
        f"SELECT ?, ?, {NOW}, {_marks(columns)} WHERE EXISTS (SELECT 1 FROM tracks WHERE track_id = ?) "
        f"ON CONFLICT(track_id) DO UPDATE SET {updates}"
    )
    conn.executemany(sql, [(tid, version, *(values.get(c) for c in columns), tid) for tid, version, values in rows])


def clear_enrich_errors(conn: Any, paths: Iterable[str]) -> None:
    clear_errors(conn, list(paths), [ENRICH_STAGE])


def save_mood_tags(conn: Any, tags_by_track: Mapping[int, Sequence[str]]) -> None:
    """Replace the derived mood tags of each given track."""
    conn.executemany("DELETE FROM track_mood_tags WHERE track_id = ?", [(t,) for t in tags_by_track])
    conn.executemany("INSERT INTO track_mood_tags(track_id, tag) SELECT ?, ? WHERE EXISTS "
                     "(SELECT 1 FROM tracks WHERE track_id = ?)",
                     [(t, tag, t) for t, tags in tags_by_track.items() for tag in dict.fromkeys(tags)])


def tagged_genres(conn: Any, shards: Sequence[str]) -> dict[int, list[str]]:
    """Tagged genre names (as the catalog stored them) of every track in `shards`, in tag order."""
    result: dict[int, list[str]] = {}
    if not shards:
        return result
    rows = conn.execute(
        "SELECT t.track_id, g.name FROM tracks t LEFT JOIN track_genres tg ON tg.track_id = t.track_id "
        f"LEFT JOIN genres g ON g.genre_id = tg.genre_id WHERE t.shard IN ({_marks(shards)}) "
        "ORDER BY t.track_id, tg.position",
        list(shards),
    )
    for track_id, name in rows:
        result.setdefault(track_id, [])
        if name is not None:
            result[track_id].append(name)
    return result


def music_tags_by_track(conn: Any, track_ids: Sequence[int]) -> dict[int, dict]:
    """The learned tags ({"msd": {tag: p}, "mtt": {tag: p}}) of the given tracks that have them."""
    import json

    from soniquebay_assets.catalog.db import rows_in

    rows = rows_in(conn, "SELECT track_id, music_tags FROM track_analysis WHERE music_tags IS NOT NULL "
                         "AND track_id IN ({})", list(track_ids))
    return {int(track_id): json.loads(text) for track_id, text in rows}


def replace_normalized_genres(conn: Any, genres_by_track: Mapping[int, Sequence[str]]) -> int:
    """Replace each track's canonical genres; returns rows written."""
    conn.executemany("DELETE FROM track_genres_normalized WHERE track_id = ?", [(t,) for t in genres_by_track])
    rows = [(t, g, i) for t, genres in genres_by_track.items() for i, g in enumerate(genres)]
    conn.executemany("INSERT INTO track_genres_normalized(track_id, genre, position) VALUES (?, ?, ?)", rows)
    return len(rows)


def _shard_where(shards: Sequence[str] | None) -> tuple[str, list[str]]:
    if not shards:
        return "", []
    return f" AND t.shard IN ({_marks(shards)})", list(shards)


def bpm_histogram(conn: Any, shards: Sequence[str] | None = None, width: int = 10) -> dict[str, int]:
    """Analysed BPM counts in `width`-BPM bins ('120-129'), ordered by bin."""
    where, params = _shard_where(shards)
    rows = conn.execute(
        "SELECT ta.bpm FROM track_analysis ta "
        f"JOIN tracks t ON t.track_id = ta.track_id WHERE ta.bpm IS NOT NULL{where}",
        params,
    ).fetchall()
    counts: dict[int, int] = {}
    for (bpm,) in rows:  # binned here: SQL casts truncate in SQLite but round in PostgreSQL
        start = int(bpm // width) * width
        counts[start] = counts.get(start, 0) + 1
    return {f"{b}-{b + width - 1}": counts[b] for b in sorted(counts)}


def key_table(conn: Any, shards: Sequence[str] | None = None) -> list[tuple[str, str, int]]:
    """(key with mode, Camelot, count) of analysed keys, most common first."""
    where, params = _shard_where(shards)
    return [tuple(r) for r in conn.execute(
        "SELECT ta.key || ' ' || ta.mode, MIN(ta.camelot), COUNT(*) AS n FROM track_analysis ta "
        f"JOIN tracks t ON t.track_id = ta.track_id WHERE ta.key IS NOT NULL{where} "
        "GROUP BY ta.key, ta.mode ORDER BY n DESC, 2",
        params,
    )]


# Track listing fields, registered into catalog.queries by that module.
_MOODS_JSON = (
    "CASE WHEN ta.mood_happy IS NULL THEN NULL ELSE json_object('happy', ta.mood_happy, 'sad', ta.mood_sad, "
    "'aggressive', ta.mood_aggressive, 'relaxed', ta.mood_relaxed, 'party', ta.mood_party) END"
)
_USE_BPM_TAG = f"(t.bpm_tag IS NOT NULL AND (ta.bpm IS NULL OR ta.bpm_confidence < {BPM_CONFIDENCE_THRESHOLD}))"
_USE_KEY_TAG = (f"(t.key_tag IS NOT NULL AND t.key_tag <> '' AND "
                f"(ta.key IS NULL OR ta.key_confidence < {KEY_CONFIDENCE_THRESHOLD}))")
TRACK_LISTING_COLUMNS: dict[str, str] = {
    "bpm": f"CASE WHEN {_USE_BPM_TAG} THEN t.bpm_tag ELSE ta.bpm END",
    "bpm_source": f"CASE WHEN {_USE_BPM_TAG} THEN 'tag' WHEN ta.bpm IS NOT NULL THEN 'analysis' END",
    "bpm_confidence": "ta.bpm_confidence",
    "bpm_analyzed": "ta.bpm",
    "key": f"CASE WHEN {_USE_KEY_TAG} THEN t.key_tag ELSE ta.key END",
    "mode": f"CASE WHEN {_USE_KEY_TAG} THEN NULL ELSE ta.mode END",
    "camelot": f"CASE WHEN {_USE_KEY_TAG} THEN NULL ELSE ta.camelot END",
    "key_source": f"CASE WHEN {_USE_KEY_TAG} THEN 'tag' WHEN ta.key IS NOT NULL THEN 'analysis' END",
    "key_confidence": "ta.key_confidence",
    "open_key": f"CASE WHEN {_USE_KEY_TAG} THEN NULL ELSE ta.open_key END",
    "loudness_lufs": "ta.loudness_lufs",
    "loudness_range_lu": "ta.loudness_range_lu",
    "true_peak_dbtp": "ta.true_peak_dbtp",
    "replaygain_track_gain_db": "ta.replaygain_track_gain_db",
    "replaygain_track_peak": "ta.replaygain_track_peak",
    "replaygain_album_gain_db": "alo.replaygain_album_gain_db",
    "replaygain_album_peak": "alo.replaygain_album_peak",
    "energy": "ta.energy",
    "danceability": "ta.danceability",
    "moods": _MOODS_JSON,
    "music_tags": "ta.music_tags",  # JSON {"msd": {tag: p}, "mtt": {tag: p}}: the MusiCNN taggers' probabilities
    "analysis_version": "ta.analysis_version",
    "analysis_status": "ta.status",
    "genres_normalized": (
        "(SELECT json_group_array(genre) FROM (SELECT genre FROM track_genres_normalized gn "
        " WHERE gn.track_id = t.track_id ORDER BY gn.position) AS names)"
    ),
}
TRACK_LISTING_JOINS = ["LEFT JOIN track_analysis ta ON ta.track_id = t.track_id",
                       "LEFT JOIN album_loudness alo ON alo.album_id = t.album_id"]


# -- album loudness (ReplayGain 2.0 album gain) ----------------------------------------------------------------


@dataclass(frozen=True)
class AlbumTrackLoudness:
    """What album gating needs of one track: its block histogram (bytes, None when never measured by the
    whole-track meter) and its true peak."""

    album_id: int
    track_id: int
    histogram: bytes | None
    true_peak: float | None


def _album_signatures(conn: Any, album_ids_sql: str, params: list[Any]) -> dict[int, tuple[str, int]]:
    rows = conn.execute(
        "SELECT t.album_id, COUNT(*), SUM(t.track_id), MAX(ta.analyzed_at), COUNT(ta.loudness_histogram) "
        "FROM tracks t LEFT JOIN track_analysis ta ON ta.track_id = t.track_id "
        f"WHERE t.album_id IN ({album_ids_sql}) GROUP BY t.album_id", params,
    ).fetchall()
    return {r[0]: (f"{r[1]}:{r[2]}:{r[3] or ''}:{r[4]}", r[1]) for r in rows}


def albums_needing_loudness(conn: Any, shards: Sequence[str]) -> dict[int, tuple[str, int]]:
    """Albums with a track in `shards` whose tracks changed (added, removed, re-analysed) since their loudness
    was gated: album_id -> (signature to store, number of tracks). Their tracks in other shards count too."""
    if not shards:
        return {}
    current = _album_signatures(conn, f"SELECT album_id FROM tracks WHERE shard IN ({_marks(shards)})",
                                list(shards))
    if not current:
        return {}
    subquery, param = id_set(conn, list(current))
    stored = dict(conn.execute(f"SELECT album_id, signature FROM album_loudness WHERE album_id IN ({subquery})",
                               [param]).fetchall())
    return {album: facts for album, facts in current.items() if stored.get(album) != facts[0]}


def album_track_loudness(conn: Any, album_ids: Sequence[int]) -> list[AlbumTrackLoudness]:
    """Every track of these albums with its block histogram and true peak (None where not measured)."""
    if not album_ids:
        return []
    subquery, param = id_set(conn, album_ids)
    rows = conn.execute(
        "SELECT t.album_id, t.track_id, ta.loudness_histogram, ta.replaygain_track_peak FROM tracks t "
        "LEFT JOIN track_analysis ta ON ta.track_id = t.track_id "
        f"WHERE t.album_id IN ({subquery}) ORDER BY t.album_id, t.track_id", [param],
    ).fetchall()
    return [AlbumTrackLoudness(r[0], r[1], None if r[2] is None else bytes(r[2]), r[3] if r[2] is not None else None)
            for r in rows]


def save_album_loudness(conn: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Upsert album rows: album_id, loudness_lufs, replaygain_album_gain_db, replaygain_album_peak,
    tracks_measured, tracks_total, signature. An album deleted meanwhile is skipped."""
    cols = ("album_id", "loudness_lufs", "replaygain_album_gain_db", "replaygain_album_peak", "tracks_measured",
            "tracks_total", "signature")
    updates = ", ".join(f"{c} = excluded.{c}" for c in (*cols[1:], "computed_at"))
    conn.executemany(
        f"INSERT INTO album_loudness ({', '.join(cols)}, computed_at) SELECT {_marks(cols)}, {NOW} "
        f"WHERE EXISTS (SELECT 1 FROM albums WHERE album_id = ?) ON CONFLICT(album_id) DO UPDATE SET {updates}",
        [(*(row[c] for c in cols), row["album_id"]) for row in rows],
    )


@dataclass(frozen=True)
class ReplayGain:
    """ReplayGain 2.0 values of one track as tags carry them: gains in dB (reference -18 LUFS), peaks linear
    (true peak, 1.0 = full scale). Album values are None when the album's loudness is not known yet."""

    track_gain_db: float
    track_peak: float
    album_gain_db: float | None
    album_peak: float | None


def replaygain_for_tracks(conn: Any, track_ids: Sequence[int]) -> dict[int, ReplayGain]:
    """ReplayGain of the given tracks, for those whose current audio the current whole-track meter measured (a
    track measured by an older analysis version, changed since, silent or not analysed is left out). Album
    values only for an album gated over all its tracks as they are now: none of them still waits for a
    measurement (new, changed, or measured by an older meter) and none changed since the album was gated."""
    from soniquebay_assets.domain.analysis.analyze import PART_VERSIONS

    if not track_ids:
        return {}
    version = PART_VERSIONS["loudness"]
    subquery, param = id_set(conn, track_ids)
    rows = conn.execute(
        "SELECT t.track_id, t.album_id, ta.replaygain_track_gain_db, ta.replaygain_track_peak FROM tracks t "
        f"JOIN track_analysis ta ON ta.track_id = t.track_id WHERE t.track_id IN ({subquery}) "
        "AND ta.analysis_version >= ? AND t.audio_changed_at <= ta.analyzed_at "
        "AND ta.replaygain_track_gain_db IS NOT NULL AND ta.replaygain_track_peak IS NOT NULL",
        [param, version],
    ).fetchall()
    albums = _complete_album_gains(conn, sorted({r[1] for r in rows}), version)
    return {r[0]: ReplayGain(r[2], r[3], *albums.get(r[1], (None, None))) for r in rows}


def _complete_album_gains(conn: Any, album_ids: Sequence[int], version: int) -> dict[int, tuple[float, float]]:
    """album -> (gain, peak) for the albums whose stored loudness covers every track as it is now."""
    if not album_ids:
        return {}
    subquery, param = id_set(conn, album_ids)
    waiting = {r[0] for r in conn.execute(
        "SELECT DISTINCT t.album_id FROM tracks t LEFT JOIN track_analysis ta ON ta.track_id = t.track_id "
        f"WHERE t.album_id IN ({subquery}) AND (ta.track_id IS NULL OR t.audio_changed_at > ta.analyzed_at "
        "OR ta.analysis_version < ?)", [param, version])}
    current = _album_signatures(conn, subquery, [param])
    return {album: (gain, peak) for album, gain, peak, signature in conn.execute(
        "SELECT album_id, replaygain_album_gain_db, replaygain_album_peak, signature FROM album_loudness "
        f"WHERE album_id IN ({subquery}) AND replaygain_album_gain_db IS NOT NULL", [param])
        if album not in waiting and current.get(album, ("",))[0] == signature}
