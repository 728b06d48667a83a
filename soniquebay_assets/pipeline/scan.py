"""The scan chain for a set of shards: inventory, tag extraction, catalog entities. Used by assets and the CLI."""

from __future__ import annotations

import gc
import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from soniquebay_assets.catalog import deferred, entities, inventory, queries, snapshots
from soniquebay_assets.catalog.db import transaction
from soniquebay_assets.catalog.inventory import ErrorRecord
from soniquebay_assets.domain.albums import (
    AlbumIdentity,
    album_identity,
    album_identity_key,
    display_artist,
    track_credits,
)
from soniquebay_assets.domain.tag_model import TagRecord
from soniquebay_assets.library.process_pool import WorkerFailure, pool_map
from soniquebay_assets.library.walker import (
    FoundFile,
    WalkProblem,
    WalkResult,
    content_fingerprint,
    display_path,
    walk_library,
)
from soniquebay_assets.pipeline import progress
from soniquebay_assets.stages import by_group, error_labels

CATALOG_BATCH = 2000
EXTRACT_CHUNK = 128
PARALLEL_THRESHOLD = 64  # below this many files a process pool costs more than it saves
# a deleted file's problems of every later stage go with it (the inventory's own are settled from the walk)
LATER_STAGE_ERRORS = [label for label in error_labels() if label != by_group("scan").error_label]


# --------------------------------------------------------------------------- planning (one walk per scan)

@dataclass
class ScanPlan:
    walk: WalkResult
    digests: dict[str, tuple[str, int]]
    affected: list[str]
    walk_seconds: float
    files_seen: int = 0
    unchanged_estimate: int = 0


def shard_digests(files: Sequence[FoundFile]) -> dict[str, tuple[str, int]]:
    """Per shard: a hash of every (path, size, mtime) in it, and its file count."""
    by_shard: dict[str, list[FoundFile]] = {}
    for f in files:
        by_shard.setdefault(f.shard, []).append(f)
    out = {}
    for shard, members in by_shard.items():
        h = hashlib.blake2b(digest_size=12)
        for f in sorted(members, key=lambda m: m.path):
            h.update(f"{display_path(f.path)}\0{f.size}\0{f.mtime_ns}\n".encode())
        out[shard] = (h.hexdigest(), len(members))
    return out


def plan_scan(conn: Any, roots: Sequence[str | Path]) -> ScanPlan:
    """Walk once and list the shards whose files changed since the last inventory (or never finished)."""
    started = time.perf_counter()
    walk = walk_library(list(roots))
    seconds = time.perf_counter() - started
    digests = shard_digests(walk.files)
    stored = inventory.stored_shard_digests(conn)
    affected = {s for s, (d, _) in digests.items() if stored.get(s) != d}
    protected = inventory.shards_under_roots(conn, walk.unavailable_roots)
    affected |= {s for s in stored if s not in digests and s not in protected}  # emptied shards: deletions
    affected |= inventory.unfinished_shards(conn)
    unchanged = sum(n for s, (_, n) in digests.items() if s not in affected)
    return ScanPlan(walk, digests, sorted(affected), seconds, len(walk.files), unchanged)


def save_snapshot(walk: WalkResult, target: Any) -> str | Path:
    """Persist a walk for the run's inventory step: into the catalog when `target` is a connection (any worker
    host can read it; returns a `catalog:` reference), else as a JSON file in folder `target` (returns its path)."""
    payload = json.dumps({
        "roots": walk.roots,
        "unavailable_roots": walk.unavailable_roots,
        "files": [[_enc(f.path), f.root, f.album_folder, f.shard, f.size, f.mtime_ns] for f in walk.files],
        "problems": [[_enc(p.path), p.reason, p.detail, p.severity] for p in walk.problems],
    })
    if not isinstance(target, str | Path):
        return snapshots.save(target, payload, len(walk.files))
    directory = Path(target)
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.blake2b(json.dumps(walk.roots).encode() + str(time.time_ns()).encode(), digest_size=8)
    path = directory / f"walk-{time.strftime('%Y%m%dT%H%M%S')}-{digest.hexdigest()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(payload, encoding="utf-8")
    tmp.replace(path)
    for old in sorted(directory.glob("walk-*.json"))[:-10]:  # keep the last ten for inspection
        old.unlink(missing_ok=True)
    return path


def load_snapshot(reference: str | Path, conn: Any = None) -> WalkResult:
    """A walk saved by save_snapshot: a `catalog:` reference (needs `conn`) or a JSON file path."""
    if snapshots.is_reference(str(reference)):
        if conn is None:
            raise ValueError(f"walk snapshot {reference} lives in the catalog: give a catalog connection")
        data = json.loads(snapshots.load(conn, str(reference)))
    else:
        data = json.loads(Path(reference).read_text(encoding="utf-8"))
    walk = WalkResult(roots=data["roots"], unavailable_roots=data["unavailable_roots"])
    walk.files = [FoundFile(_dec(p), root, folder, shard, size, mtime) for p, root, folder, shard, size, mtime
                  in data["files"]]
    walk.problems = [WalkProblem(_dec(p), reason, detail, severity) for p, reason, detail, severity
                     in data["problems"]]
    return walk


def _enc(path: str) -> str:
    """JSON-safe form of a path that may carry surrogate escapes."""
    return path.encode("utf-8", "surrogateescape").hex() if display_path(path) != path else "=" + path


def _dec(value: str) -> str:
    return value[1:] if value.startswith("=") else bytes.fromhex(value).decode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------- inventory

@dataclass
class InventoryStats:
    files_seen: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    resumed: int = 0  # unchanged on disk but left unfinished by an earlier scan (killed, failed): finished now
    deleted: int = 0
    moved: int = 0
    walk_problems: int = 0
    problems_by_reason: dict[str, int] = field(default_factory=dict)
    deleted_paths: list[str] = field(default_factory=list)
    moved_paths: list[tuple[str, str]] = field(default_factory=list)
    unavailable_roots: list[str] = field(default_factory=list)
    seconds: float = 0.0


UNFINISHED_STAGES = ("inventoried", "extracted")  # see inventory.unfinished_shards


def inventory_shards(conn: Any, walk: WalkResult, shards: Sequence[str]) -> InventoryStats:
    """Compare the walk with the catalog for these shards: add, mark changed, follow moves, delete."""
    started = time.perf_counter()
    wanted = set(shards)
    stats = InventoryStats(unavailable_roots=list(walk.unavailable_roots))
    known = inventory.known_files(conn)
    seen_paths = {display_path(f.path): f for f in walk.files}
    unavailable = set(walk.unavailable_roots)
    # Moves are matched globally (a file may leave one shard for another), then applied if either side is ours.
    vanished = [k for p, k in known.items() if p not in seen_paths and k.root not in unavailable]
    arrived = [f for p, f in seen_paths.items() if p not in known]
    moves = _match_moves(vanished, arrived)
    moved_targets = {id(f) for _, f in moves}
    moved_sources = set()

    new_rows, changed_rows = [], []
    with transaction(conn):
        for source, target in moves:
            if source.shard in wanted or target.shard in wanted:
                inventory.apply_move(conn, source.file_id, target.display_path, target.raw_path, target.root,
                                     target.shard, target.album_folder, target.mtime_ns)
                stats.moved += 1
                stats.moved_paths.append((source.path, target.display_path))
            moved_sources.add(source.file_id)
        for f in walk.files:
            if f.shard not in wanted:
                continue
            stats.files_seen += 1
            path = f.display_path
            known_file = known.get(path)
            if known_file is None:
                if id(f) not in moved_targets:
                    new_rows.append((path, f.raw_path, f.root, f.shard, f.album_folder, f.size, f.mtime_ns, None))
            elif known_file.size != f.size or known_file.mtime_ns != f.mtime_ns:
                changed_rows.append((f.size, f.mtime_ns, known_file.file_id))
            elif known_file.stage in UNFINISHED_STAGES:
                stats.resumed += 1
            else:
                stats.unchanged += 1
        inventory.insert_files(conn, new_rows)
        inventory.mark_changed(conn, changed_rows)
        stats.new, stats.changed = len(new_rows), len(changed_rows)
        doomed = [k for k in vanished if k.shard in wanted and k.file_id not in moved_sources]
        inventory.delete_files(conn, [k.file_id for k in doomed])
        inventory.clear_errors(conn, [k.path for k in doomed], LATER_STAGE_ERRORS)
        stats.deleted = len(doomed)
        stats.deleted_paths = [k.path for k in doomed]
        if stats.deleted:
            entities.delete_orphans(conn)
        problems = _walk_problems(walk)
        inventory.clear_walk_errors_except(conn, {p.path for p in problems})
        inventory.record_errors(conn, problems)
        inventory.save_shard_digests(conn, {s: d for s, d in shard_digests(walk.files).items() if s in wanted})
        inventory.drop_empty_shard_digests(conn, sorted(wanted))
    stats.walk_problems = len(problems)
    stats.problems_by_reason = dict(Counter(p.reason for p in problems))
    stats.seconds = round(time.perf_counter() - started, 3)
    return stats


def _walk_problems(walk: WalkResult) -> list[ErrorRecord]:
    rows = [ErrorRecord(display_path(p.path), "inventory", p.reason, p.detail, None, p.severity)
            for p in walk.problems]
    for f in walk.files:
        if f.raw_path is not None:
            rows.append(ErrorRecord(f.display_path, "inventory", "file name is not valid UTF-8",
                                    "cataloged under an escaped name; renaming the file to UTF-8 is recommended",
                                    f.shard, "warning"))
    return rows


def _match_moves(vanished: list, arrived: list[FoundFile]) -> list[tuple[Any, FoundFile]]:
    """Pair vanished catalog files with newly seen files of the same size and content fingerprint."""
    by_size: dict[int, list] = {}
    for k in vanished:
        if k.fingerprint:
            by_size.setdefault(k.size, []).append(k)
    moves = []
    for f in arrived:
        candidates = by_size.get(f.size)
        if not candidates:
            continue
        try:
            fp = content_fingerprint(f.path, f.size)
        except OSError:
            continue
        for k in candidates:
            if k.fingerprint == fp:
                moves.append((k, f))
                candidates.remove(k)
                break
    return moves


# --------------------------------------------------------------------------- tag extraction

@dataclass
class ExtractStats:
    read: int = 0
    ok: int = 0
    errors: int = 0
    errors_by_reason: dict[str, int] = field(default_factory=dict)
    formats: dict[str, int] = field(default_factory=dict)
    mean_quality: float | None = None
    seconds: float = 0.0


def extract_shards(conn: Any, shards: Sequence[str], *, workers: int | None = None) -> ExtractStats:
    """Read tags of every new or changed file in these shards; bad files become recorded errors."""
    from soniquebay_assets.pipeline.tag_worker import TagRead, announce_chunk, read_file

    started = time.perf_counter()
    todo = inventory.files_to_extract(conn, shards)
    stats = ExtractStats()
    shard_of = {row[0]: row[3] for row in todo}
    path_of = {row[0]: row[1] for row in todo}
    items = [(fid, path, raw, root, size) for fid, path, raw, _shard, size, root in todo]
    had_errors = inventory.error_paths(conn, "extract", shards) if todo else set()
    reasons: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    quality_sum = 0.0

    def write(results: list[TagRead]) -> None:
        nonlocal quality_sum
        ok_rows, failed, errors = [], [], []
        for read in results:
            if read.ok:
                ok_rows.append((read.file_id, read.payload, read.quality, read.fingerprint))
                quality_sum += read.quality
                formats[read.audio_format] += 1
            else:
                failed.append(read.file_id)
                reasons[read.reason] += 1
                errors.append(ErrorRecord(path_of[read.file_id], "extract", read.reason, read.detail,
                                          shard_of[read.file_id]))
        with transaction(conn):
            inventory.save_extracted(conn, ok_rows)
            inventory.clear_errors(conn, [path_of[r[0]] for r in ok_rows if path_of[r[0]] in had_errors],
                                   ["extract"])
            inventory.mark_extract_failed(conn, failed)
            inventory.record_errors(conn, errors)
        stats.read += len(results)
        stats.ok += len(ok_rows)
        stats.errors += len(failed)
        progress.report("tags", stats.read, len(items))

    batch: list[TagRead] = []
    for index, result in pool_map(read_file, items, workers=workers, min_items=PARALLEL_THRESHOLD,
                                  chunk_size=EXTRACT_CHUNK, before_chunk=announce_chunk):
        if isinstance(result, WorkerFailure):
            result = TagRead(items[index][0], reason=result.reason, detail=result.detail)
        batch.append(result)
        if len(batch) >= EXTRACT_CHUNK:
            write(batch)
            batch = []
    if batch:
        write(batch)
    stats.errors_by_reason = dict(reasons)
    stats.formats = dict(formats)
    stats.mean_quality = round(quality_sum / stats.ok, 3) if stats.ok else None
    stats.seconds = round(time.perf_counter() - started, 3)
    return stats


# --------------------------------------------------------------------------- catalog entities

@dataclass
class CatalogStats:
    written: int = 0
    errors: int = 0
    orphans_removed: dict[str, int] = field(default_factory=dict)
    track_ids: list[int] = field(default_factory=list)
    seconds: float = 0.0
    facts: CatalogFacts | None = None  # read after the write, for the materialization and its checks


@dataclass
class CatalogFacts:
    """The catalog after a write: the figures its materialization shows and what its checks judge."""

    counts: dict[str, int]
    formats_in_shards: dict[str, int]
    duration_hours_in_shards: float
    errors_by_reason_in_shards: dict[str, int]
    duplicate_paths: list[str]
    tracks_missing_album_or_artist: list[int]
    fallback_title_share: float


def catalog_facts(conn: Any, shards: Sequence[str]) -> CatalogFacts:
    """Read the facts once the catalog stage has written these shards."""
    return CatalogFacts(
        counts=queries.catalog_counts(conn), formats_in_shards=queries.formats_breakdown(conn, shards),
        duration_hours_in_shards=queries.total_duration_s(conn, shards) / 3600,
        errors_by_reason_in_shards=queries.errors_by_reason(conn, shards=shards),
        duplicate_paths=queries.duplicate_paths(conn),
        tracks_missing_album_or_artist=queries.tracks_missing_album_or_artist(conn),
        fallback_title_share=queries.fallback_title_share(conn),
    )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: the catalog stage allocates hundreds of thousands of short-lived,
    acyclic containers, and the collections they trigger (each walking every live object) cost it more than half
    its Python time (measured on 20,000 files). Reference counting still frees them as they go."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def catalog_shards(conn: Any, shards: Sequence[str]) -> CatalogStats:
    """Turn extracted tags into artists, albums, tracks, credits and genres, one transaction per batch."""
    with _gc_paused():
        return _catalog_shards(conn, shards)


def _catalog_shards(conn: Any, shards: Sequence[str]) -> CatalogStats:
    started = time.perf_counter()
    stats = CatalogStats()
    pending = inventory.files_to_catalog(conn, shards)
    writes, failures = [], []
    seen = _SeenTags()
    for item in pending:
        try:
            writes.append(_prepare(item, seen))
        except Exception as exc:  # a malformed payload must not cost the other files
            failures.append(ErrorRecord(item["path"], "catalog", "could not build catalog entry",
                                        f"{type(exc).__name__}: {exc}", item["shard"]))
    for start in range(0, len(writes), CATALOG_BATCH):
        batch = writes[start:start + CATALOG_BATCH]
        with transaction(conn):
            written_ids = entities.upsert_tracks(conn, batch)
            stats.track_ids.extend(written_ids)
            # same transaction: a written track always carries its deferred enrichment/vectors/covers work
            deferred.enqueue_after_catalog_write(conn, written_ids)
        stats.written += len(batch)
        progress.report("catalog", stats.written, len(writes))
    with transaction(conn):
        if failures:
            inventory.record_errors(conn, failures)
            inventory.mark_failed_paths(conn, [f.path for f in failures])
        entities.merge_untagged_albums(conn, shards)
        entities.refresh_album_artists(conn)
        stats.orphans_removed = entities.delete_orphans(conn)
    stats.errors = len(failures)
    stats.seconds = round(time.perf_counter() - started, 3)
    return stats


def run_catalog_chain(conn: Any, groups: Sequence[str], shards: Sequence[str], walk: WalkResult | None) -> dict:
    """The selected catalog-chain stages on these shards, in the chain's order, outside any orchestrator:
    group -> its stage's stats (the catalog stage's with its facts)."""
    done: dict[str, Any] = {}
    if "scan" in groups:
        if walk is None:
            raise ValueError("the inventory stage needs the walk of the library roots")
        done["scan"] = inventory_shards(conn, walk, shards)
    if "extract" in groups:
        done["extract"] = extract_shards(conn, shards)
    if "insert" in groups:
        done["insert"] = catalog_shards(conn, shards)
        done["insert"].facts = catalog_facts(conn, shards)
    return done


class _SeenTags:
    """Album identities and credits already derived in this run: an album's tracks repeat the same album tags and
    mostly the same artists, so each distinct value is derived once."""

    def __init__(self) -> None:
        from soniquebay_assets.domain.tags import split_featured

        self.split_featured = lru_cache(maxsize=65536)(split_featured)
        self.albums: dict[tuple, AlbumIdentity] = {}
        self.credits: dict[tuple, tuple[list[tuple[str, str]], str]] = {}

    def album(self, tags: TagRecord, root: str, album_folder: str) -> AlbumIdentity:
        try:
            key = album_identity_key(tags, root, album_folder)
            found = self.albums.get(key)
        except Exception:  # a malformed tag value: derive it uncached, failing (or not) as it always did
            return album_identity(tags, root, album_folder)
        if found is None:
            found = self.albums[key] = album_identity(tags, root, album_folder)
        return found

    def credits_of(self, tags: TagRecord) -> tuple[list[tuple[str, str]], str]:
        """(credits, display artist); the list is the caller's own."""
        try:
            key = tuple(tags.artists)
            found = self.credits.get(key)
        except Exception:
            credits = track_credits(tags, self.split_featured)
            return credits, display_artist(credits)
        if found is None:
            credits = track_credits(tags, self.split_featured)
            found = self.credits[key] = (credits, display_artist(credits))
        return list(found[0]), found[1]


def _prepare(item: dict[str, Any], seen: _SeenTags) -> entities.TrackWrite:
    tags = TagRecord.from_dict(item["tags"])
    album = seen.album(tags, item["root"], item["album_folder"])
    credits, artist_display = seen.credits_of(tags)
    return entities.TrackWrite(
        file_id=item["file_id"], path=item["path"], shard=item["shard"], size=item["size"],
        mtime_ns=item["mtime_ns"], fingerprint=item["fingerprint"], tags=tags, album=album,
        album_folder=item["album_folder"], credits=credits, artist_display=artist_display,
        genres=list(dict.fromkeys(g.strip() for g in tags.genres if g and g.strip())),
    )
