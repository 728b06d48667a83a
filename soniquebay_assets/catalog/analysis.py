"""Repository for audio enrichment: which tracks need analysis, saving results, errors, genres, mood tags,
and the summaries the UI shows (BPM histogram, key table)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from soniquebay_assets.catalog.inventory import NOW, clear_errors

ENRICH_STAGE = "enrich"

ANALYSIS_COLUMNS = (
    "status", "error", "bpm", "bpm_confidence", "beat_count", "key", "mode", "key_confidence", "camelot",
    "open_key", "loudness_lufs", "loudness_range_lu", "replaygain_track_gain_db", "replaygain_track_peak",
    "energy", "danceability", "acousticness", "instrumentalness", "mood_happy", "mood_sad", "mood_aggressive",
    "mood_relaxed", "mood_party", "spectral_centroid", "spectral_rolloff", "spectral_flatness",
    "zero_crossing_rate", "duration_s", "analyzed_seconds", "decoder", "seconds_spent",
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


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


def tracks_to_analyze(conn: Any, shards: Sequence[str], *, current_version: int, force_version: bool = False,
                      retry_errors: bool = False) -> list[TrackToAnalyze]:
    """Tracks of `shards` never analysed, or whose audio changed since; with force_version also those analysed
    by an older ANALYSIS_VERSION (a version bump re-runs on demand only); with retry_errors also failed ones."""
    if not shards:
        return []
    sql = (
        "SELECT t.track_id, t.path, t.shard, t.duration_s FROM tracks t "
        "LEFT JOIN track_analysis ta ON ta.track_id = t.track_id "
        f"WHERE t.shard IN ({_marks(shards)}) AND (ta.track_id IS NULL OR t.audio_changed_at > ta.analyzed_at "
        "OR (? = 1 AND ta.analysis_version < ?) OR (? = 1 AND ta.status = 'error')) ORDER BY t.shard, t.path"
    )
    rows = conn.execute(sql, [*shards, int(force_version), current_version, int(retry_errors)]).fetchall()
    return [TrackToAnalyze(r[0], r[1], r[2], r[3]) for r in rows]


def outdated_count(conn: Any, shards: Sequence[str], current_version: int) -> int:
    """Tracks analysed by an older ANALYSIS_VERSION (re-run them with force_version)."""
    if not shards:
        return 0
    return conn.execute(
        "SELECT COUNT(*) FROM track_analysis ta JOIN tracks t ON t.track_id = ta.track_id "
        f"WHERE t.shard IN ({_marks(shards)}) AND ta.analysis_version < ?", [*shards, current_version],
    ).fetchone()[0]


def track_count(conn: Any, shards: Sequence[str]) -> int:
    if not shards:
        return 0
    return conn.execute(f"SELECT COUNT(*) FROM tracks WHERE shard IN ({_marks(shards)})", list(shards)).fetchone()[0]


def save_analyses(conn: Any, rows: Sequence[tuple[int, int, Mapping[str, Any]]]) -> None:
    """rows: (track_id, analysis_version, values by column name); upsert, analyzed_at = now."""
    cols = ", ".join(ANALYSIS_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in ("analysis_version", "analyzed_at", *ANALYSIS_COLUMNS))
    # WHERE EXISTS: a track deleted by a concurrent rescan while it was being analysed is skipped, not a
    # foreign-key failure that would fail the whole batch
    sql = (
        f"INSERT INTO track_analysis (track_id, analysis_version, analyzed_at, {cols}) "
        f"SELECT ?, ?, {NOW}, {_marks(ANALYSIS_COLUMNS)} WHERE EXISTS (SELECT 1 FROM tracks WHERE track_id = ?) "
        f"ON CONFLICT(track_id) DO UPDATE SET {updates}"
    )
    conn.executemany(sql, [(tid, version, *(values.get(c) for c in ANALYSIS_COLUMNS), tid)
                           for tid, version, values in rows])


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
    "replaygain_track_gain_db": "ta.replaygain_track_gain_db",
    "energy": "ta.energy",
    "danceability": "ta.danceability",
    "moods": _MOODS_JSON,
    "analysis_version": "ta.analysis_version",
    "analysis_status": "ta.status",
    "genres_normalized": (
        "(SELECT json_group_array(genre) FROM (SELECT genre FROM track_genres_normalized gn "
        " WHERE gn.track_id = t.track_id ORDER BY gn.position) AS names)"
    ),
}
TRACK_LISTING_JOINS = ["LEFT JOIN track_analysis ta ON ta.track_id = t.track_id"]
