"""Stage `enrich`: decode + analyse tracks in a process pool, write results to the catalog in batches, then
gate the loudness of every album whose tracks changed (ReplayGain album gain).

Workers only decode and analyse (pure CPU); the parent owns the SQLite connection and writes one transaction
per batch, so a crash loses at most one batch and a re-run never duplicates (upserts on track_id). A track
analysed by an older ANALYSIS_VERSION recomputes and rewrites only the parts whose code changed since, after
the new and changed tracks of the run: `queue_outdated` puts such tracks in the deferred queue, behind new files.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from soniquebay_assets.catalog import analysis as repo
from soniquebay_assets.catalog import deferred
from soniquebay_assets.catalog.db import transaction
from soniquebay_assets.catalog.inventory import ErrorRecord, record_errors
from soniquebay_assets.domain.analysis.analyze import (
    ALL_PARTS,
    ANALYSIS_VERSION,
    PART_FIELDS,
    parts_to_recompute,
)
from soniquebay_assets.domain.genres import merge_genres, mood_tags, normalize_genres
from soniquebay_assets.library.process_pool import WorkerFailure, pool_map
from soniquebay_assets.pipeline import progress
from soniquebay_assets.settings import DataDir

BATCH_SIZE = 50
# Below this many tracks a pool costs more (a worker's start + imports, ~1 s) than it saves.
MIN_TRACKS_FOR_POOL = 4


class FileAnalysis(NamedTuple):
    """One file's analysis: the catalog row's values (status 'error' with its message when it failed), a
    short stable reason when it failed or is partial ('' when ok), and the analysis parts the values hold."""

    values: dict[str, Any]
    reason: str
    parts: frozenset[str] = ALL_PARTS


def analyze_file(path: str, duration_hint: float | None = None,
                 parts: frozenset[str] | None = None) -> FileAnalysis:
    """Decode one file once (loudness of the whole file, excerpts for the rest) and analyse it; `parts`: the
    analysis parts to report (default all). Never raises (errors come back as status 'error')."""
    from soniquebay_assets.domain.analysis.analyze import analyze_samples
    from soniquebay_assets.library.audio_decode import DecodeError, decode_track

    started = time.perf_counter()
    try:
        decoded = decode_track(path, duration_hint=duration_hint)
    except DecodeError as exc:
        return FileAnalysis({"status": "error", "error": exc.detail, "seconds_spent": _since(started)}, exc.reason)
    except Exception as exc:  # a decoder bug must not fail the partition
        return FileAnalysis({"status": "error", "error": f"{type(exc).__name__}: {exc}",
                             "seconds_spent": _since(started)}, "decode_crash")
    try:
        result = analyze_samples(decoded.segments, decoded.sr, duration_s=decoded.duration_s,
                                 decode_note=decoded.partial_reason, loudness=decoded.loudness,
                                 layout=decoded.layout, parts=parts)
    except Exception as exc:
        return FileAnalysis({"status": "error", "error": f"analysis failed: {type(exc).__name__}: {exc}",
                             "duration_s": decoded.duration_s, "seconds_spent": _since(started)}, "analysis_crash")
    values = result.as_row()
    values["decoder"] = decoded.decoder
    values["seconds_spent"] = _since(started)
    reason = ""
    if result.status != "ok":
        reason = "partial_decode" if decoded.partial_reason else ("silent" if "silent" in (result.error or "")
                                                                 else "partial_analysis")
    return FileAnalysis(values, reason, result.parts)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 4)


def analyze_job(job: tuple[str, float | None, frozenset[str] | None]) -> FileAnalysis:
    """analyze_file for one (path, duration hint, parts) triple: the form a process pool hands over."""
    return analyze_file(*job)


def init_analysis_worker(numba_cache: str) -> None:
    """Runs first in each worker: librosa/numba (if ever imported) must find a persistent JIT cache."""
    os.environ.setdefault("NUMBA_CACHE_DIR", numba_cache)
    # one BLAS/FFT thread per worker: the pool already uses every core
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    # those come too late when the forkserver has imported numpy already (its OpenBLAS then runs a thread per
    # core, whose spinning on a busy machine costs CPU time): hold the loaded libraries to one thread too
    import numpy  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


@dataclass
class EnrichStats:
    """What one enrichment run did, and the shards' distributions for the UI."""

    shards: int = 0
    tracks_in_shards: int = 0
    selected: int = 0
    skipped: int = 0  # up to date
    analyzed: int = 0
    ok: int = 0
    partial: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    track_seconds: float = 0.0
    audio_seconds_analyzed: float = 0.0
    mean_seconds_per_track: float | None = None
    genre_rows: int = 0
    outdated_version: int = 0  # tracks still analysed by an older version (re-measured by later runs)
    parts_recomputed: dict[str, int] = field(default_factory=dict)  # part -> tracks whose part was rewritten
    albums_gated: int = 0  # albums whose loudness (ReplayGain album gain) was computed again
    bpm_histogram: dict[str, int] = field(default_factory=dict)
    key_table: list[tuple[str, str, int]] = field(default_factory=list)
    seconds: float = 0.0


def enrich_shards(conn: Any, shards: list[str], *, data_dir: DataDir | Path | str | None = None,
                  workers: int | None = None, outdated_ids: Collection[int] | None = None,
                  retry_errors: bool = False) -> EnrichStats:
    """Analyse the tracks of `shards` that need it (see catalog.analysis.tracks_to_analyze: new and changed
    first, then those an older version analysed, all or only `outdated_ids`) and refresh normalized genres."""
    started = time.perf_counter()
    data = data_dir if isinstance(data_dir, DataDir) else DataDir(Path(data_dir)) if data_dir else DataDir()
    numba_cache = data.numba_cache
    numba_cache.mkdir(parents=True, exist_ok=True)
    todo = repo.tracks_to_analyze(conn, shards, current_version=ANALYSIS_VERSION, outdated_ids=outdated_ids,
                                  retry_errors=retry_errors)
    total = repo.track_count(conn, shards)
    stats = EnrichStats(shards=len(shards), tracks_in_shards=total, selected=len(todo), skipped=total - len(todo))
    reasons: Counter[str] = Counter()
    track_seconds = audio_seconds = 0.0
    pending: list[tuple[Any, dict[str, Any]]] = []

    def flush() -> None:
        if pending:
            _write_batch(conn, pending)
            pending.clear()

    parts_count: Counter[str] = Counter()
    for track, outcome in analyze_tracks(todo, workers, str(numba_cache)):
        values = outcome.values
        parts_count.update(outcome.parts)
        status = values.get("status", "error")
        if status == "ok":
            stats.ok += 1
        elif status == "partial":
            stats.partial += 1
        else:
            stats.failed += 1
        if outcome.reason:
            reasons[outcome.reason] += 1
        track_seconds += values.get("seconds_spent") or 0.0
        audio_seconds += values.get("analyzed_seconds") or 0.0
        pending.append((track, outcome))
        stats.analyzed += 1
        progress.report("enrich", stats.analyzed, len(todo))
        if len(pending) >= BATCH_SIZE:
            flush()
    flush()
    stats.parts_recomputed = dict(sorted(parts_count.items()))
    stats.albums_gated = refresh_album_loudness(conn, shards)
    stats.genre_rows = refresh_normalized_genres(conn, shards)
    stats.mean_seconds_per_track = round(track_seconds / stats.analyzed, 4) if stats.analyzed else None
    stats.reasons = dict(reasons)
    stats.track_seconds = round(track_seconds, 3)
    stats.audio_seconds_analyzed = round(audio_seconds, 1)
    stats.outdated_version = repo.outdated_count(conn, shards, ANALYSIS_VERSION)
    stats.bpm_histogram = repo.bpm_histogram(conn, shards)
    stats.key_table = repo.key_table(conn, shards)
    stats.seconds = round(time.perf_counter() - started, 3)
    return stats


OUTDATED_PER_TICK = 10_000  # tracks of an older analysis version queued per schedule tick (the tick stays short)


def queue_outdated(conn: Any, *, now: float | None = None, limit: int = OUTDATED_PER_TICK) -> int:
    """Queue tracks an older ANALYSIS_VERSION analysed for re-measuring, at low priority: the deferred
    enrichment runs take them after every new or changed file. Returns how many were queued."""
    return repo.enqueue_outdated(conn, ANALYSIS_VERSION, limit=limit, now=now)


def _write_batch(conn: Any, batch: list[tuple[Any, FileAnalysis]]) -> None:
    """One transaction: analysis rows (only the columns of the parts each result holds), mood tags, and the
    enrich errors/warnings of this batch."""
    by_parts: dict[frozenset[str], list[tuple[int, int, dict[str, Any]]]] = {}
    tags, errors, clean = {}, [], []
    for track, outcome in batch:
        values = outcome.values
        by_parts.setdefault(outcome.parts, []).append((track.track_id, ANALYSIS_VERSION, values))
        if "moods" in outcome.parts:
            tags[track.track_id] = mood_tags(values)
        if values.get("status") == "ok":
            clean.append(track.path)
        else:
            severity = "error" if values.get("status") == "error" else "warning"
            errors.append(ErrorRecord(track.path, repo.ENRICH_STAGE, outcome.reason or "error",
                                      values.get("error") or "", track.shard, severity))
    with transaction(conn):
        for parts, rows in by_parts.items():
            repo.save_analyses(conn, rows, columns=_columns_of(parts))
        repo.save_mood_tags(conn, tags)
        repo.clear_enrich_errors(conn, clean)
        record_errors(conn, errors)
        # a vector built before this analysis lacks its audio part: the track's vector is due again
        deferred.enqueue(conn, "vectors", "track", [(track.track_id, track.shard) for track, _ in batch])


def _columns_of(parts: frozenset[str]) -> tuple[str, ...]:
    """The catalog columns a result of these parts writes: the parts' own and the common ones."""
    owned = {name for names in PART_FIELDS.values() for name in names}
    return tuple(c for c in repo.ANALYSIS_COLUMNS
                 if c not in owned or any(c in PART_FIELDS[p] for p in parts))


def refresh_album_loudness(conn: Any, shards: list[str]) -> int:
    """Gate again, over the union of their tracks' blocks, the albums of `shards` whose tracks changed since
    (added, removed, re-analysed); returns how many albums were gated."""
    from soniquebay_assets.domain.analysis.loudness import BlockHistogram, album_replaygain

    due = repo.albums_needing_loudness(conn, shards)
    if not due:
        return 0
    by_album: dict[int, list[Any]] = {}
    for track in repo.album_track_loudness(conn, list(due)):
        by_album.setdefault(track.album_id, []).append(track)
    rows = []
    for album_id, (signature, total) in due.items():
        measured = [t for t in by_album.get(album_id, []) if t.histogram is not None]
        gain = album_replaygain([BlockHistogram.from_bytes(t.histogram) for t in measured],
                                [t.true_peak for t in measured])
        rows.append({"album_id": album_id, "loudness_lufs": gain.loudness_lufs,
                     "replaygain_album_gain_db": gain.gain_db, "replaygain_album_peak": gain.peak,
                     "tracks_measured": len(measured), "tracks_total": total, "signature": signature})
    with transaction(conn):
        repo.save_album_loudness(conn, rows)
    return len(rows)


def refresh_normalized_genres(conn: Any, shards: list[str]) -> int:
    """Recompute canonical genres for every track of the shards (cheap; follows tag edits without re-analysis)."""
    genres, _added = merged_normalized_genres(conn, shards)
    with transaction(conn):
        return repo.replace_normalized_genres(conn, genres)


def merged_normalized_genres(conn: Any, shards: list[str]) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """(track -> the files' own canonical genres followed by whitelisted online genres and the learned tags'
    genres (music_tags.model_genres), track -> genres added)."""
    from soniquebay_assets.catalog.external import online_genres_by_track
    from soniquebay_assets.domain.analysis.music_tags import model_genres

    own = {track_id: normalize_genres(names) for track_id, names in repo.tagged_genres(conn, shards).items()}
    online = online_genres_by_track(conn, list(own))
    learned = {track_id: model_genres(tags) for track_id, tags in repo.music_tags_by_track(conn, list(own)).items()}
    merged = {track_id: merge_genres(genres, [*online.get(track_id, ()), *learned.get(track_id, ())])
              for track_id, genres in own.items()}
    added = {track_id: genres[len(own[track_id]):] for track_id, genres in merged.items() if len(genres) > len(own[track_id])}
    return merged, added


def analyze_tracks(todo: list, workers: int | None, numba_cache: str):
    """Yield (track, outcome) as results arrive; a track whose worker raised or died gets status 'error'."""
    jobs = [(track.path, track.duration_s, parts_to_recompute(track.stored_version))
            for track in todo]
    for index, outcome in pool_map(analyze_job, jobs, workers=workers, min_items=MIN_TRACKS_FOR_POOL,
                                   initializer=init_analysis_worker, initargs=(numba_cache,)):
        if isinstance(outcome, WorkerFailure):
            outcome = FileAnalysis({"status": "error", "error": outcome.detail}, outcome.reason)
        yield todo[index], outcome
