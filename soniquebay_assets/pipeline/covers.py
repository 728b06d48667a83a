"""Cover stage: for albums/artists of some shards without a picture, try the sources in order and store the best.

Only entities without a cover are looked at, and a source whose miss (or failure) is still cached for an entity is
not asked again until the cache entry expires. Network calls happen outside any database transaction.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from soniquebay_assets.artwork.image_store import ImageRejected, ImageStore
from soniquebay_assets.artwork.sources import CoverSource, SourceFailure
from soniquebay_assets.catalog import covers as repo
from soniquebay_assets.catalog.db import transaction
from soniquebay_assets.catalog.external import matched_releases
from soniquebay_assets.catalog.negative_cache import DAY, expiry, failure_ttl_s, iso, parse_iso
from soniquebay_assets.clients.http import HttpClient
from soniquebay_assets.domain.cover_choice import (
    PRIORITY_RANK,
    CoverCandidate,
    CoverEntity,
    album_priority,
    artist_priority,
    is_various_artists,
    rank_artist_candidates,
    rank_candidates,
)
from soniquebay_assets.domain.tag_values import is_placeholder
from soniquebay_assets.settings import DataDir

log = logging.getLogger(__name__)

# How long a miss is believed: local files change when the user edits the library, remote archives slowly.
# Failures (timeouts, 5xx, rate limits) are retried sooner: negative_cache.failure_ttl_s.
MISS_TTL_S = {"embedded": 1 * DAY, "folder": 1 * DAY, "coverartarchive": 30 * DAY, "lastfm": 30 * DAY}
DEFAULT_MISS_TTL_S = 7 * DAY
# Not cached: nothing was asked of the service, so nothing was learned about the entity.
UNCACHED_REASONS = frozenset({"circuit_open", "disabled"})


@dataclass
class CoverStats:
    """What one run did; becomes materialization metadata and the bench/CLI JSON."""

    entity_type: str
    without_cover: int = 0
    selected: int = 0
    skipped_cached: int = 0
    no_source: int = 0  # no configured source can look for this entity (e.g. no MBID and no Last.fm key)
    found: int = 0
    new_files: int = 0
    misses: int = 0
    by_source: Counter = field(default_factory=Counter)
    by_priority: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)  # "source:reason"
    disabled_sources: dict[str, str] = field(default_factory=dict)
    http: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "entity_type": self.entity_type, "without_cover": self.without_cover, "selected": self.selected,
            "skipped_cached": self.skipped_cached, "no_source": self.no_source, "found": self.found, "new_files": self.new_files,
            "misses": self.misses, "by_source": dict(self.by_source), "by_priority": dict(self.by_priority),
            "failures": dict(self.failures), "disabled_sources": dict(self.disabled_sources),
            "http": dict(self.http), "seconds": round(self.seconds, 3),
        }


def ttl_seconds(source: str, kind: str, attempts: int) -> int:
    """Negative-cache lifetime for a miss or a failure of one source."""
    if kind == "miss":
        return MISS_TTL_S.get(source, DEFAULT_MISS_TTL_S)
    return failure_ttl_s(attempts)


def _covers_root(data_dir: DataDir | Path | str) -> Path:
    return data_dir.covers if isinstance(data_dir, DataDir) else DataDir(Path(data_dir)).covers


def fetch_album_covers(conn: Any, shards: Sequence[str], *, data_dir: DataDir | Path | str,
                       sources: Sequence[CoverSource], http: HttpClient | None = None,
                       now: datetime | None = None, limit: int | None = None,
                       store: ImageStore | None = None) -> CoverStats:
    """Albums of `shards` without a cover: select by priority and negative cache, then try the sources."""
    now = now or datetime.now(UTC)
    rows = repo.albums_without_cover(conn, shards)
    # An album matched to MusicBrainz online (its tags have no release id) can be asked of the archive too.
    matched = matched_releases(conn, [r["album_id"] for r in rows if not r["musicbrainz_release_id"]])
    entities = []
    for row in rows:
        paths = repo.album_track_paths(conn, row["album_id"])
        folders = _folders(repo.album_track_dirs(conn, row["album_id"]))
        release_id, group_id = row["musicbrainz_release_id"], row["musicbrainz_release_group_id"]
        if not release_id and row["album_id"] in matched:
            release_id, group_id = matched[row["album_id"]]
        entities.append((row, CoverEntity(
            entity_type="album", entity_id=row["album_id"], name=row["title"], artist=row["album_artist"],
            release_id=release_id, release_group_id=group_id, track_paths=tuple(paths), folders=tuple(folders))))

    def priority(row: dict, retried: bool) -> str:
        return album_priority(row["track_count"], _age_days(row["created_at"], now),
                              title_from_fallback=bool(row["title_from_fallback"]), retried=retried)

    return _run("album", conn, entities, priority, data_dir=data_dir, sources=sources, http=http, now=now,
                limit=limit, store=store)


def fetch_artist_images(conn: Any, shards: Sequence[str], *, data_dir: DataDir | Path | str,
                        sources: Sequence[CoverSource], http: HttpClient | None = None,
                        now: datetime | None = None, limit: int | None = None,
                        store: ImageStore | None = None) -> CoverStats:
    """Artists credited in `shards` without an image: folder artist.jpg, then Last.fm."""
    now = now or datetime.now(UTC)
    entities = []
    for row in repo.artists_without_image(conn, shards):
        if is_various_artists(row["name"], row["musicbrainz_artist_id"]) or is_placeholder(row["name"]):
            continue  # a credit, not a person: no picture to look for
        folders = _folders(repo.artist_track_paths(conn, row["artist_id"]))
        entities.append((row, CoverEntity(
            entity_type="artist", entity_id=row["artist_id"], name=row["name"],
            musicbrainz_artist_id=row["musicbrainz_artist_id"], folders=tuple(folders))))

    def priority(row: dict, retried: bool) -> str:
        return artist_priority(row["track_count"], _age_days(row["created_at"], now), retried=retried)

    return _run("artist", conn, entities, priority, data_dir=data_dir, sources=sources, http=http, now=now,
                limit=limit, store=store)


def _folders(track_paths: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(str(Path(p).parent) for p in track_paths))


def _age_days(created_at: str | None, now: datetime) -> float | None:
    created = parse_iso(created_at)
    return None if created is None else (now - created).total_seconds() / DAY


def _run(entity_type: str, conn: Any, entities: list[tuple[dict, CoverEntity]], priority_of, *,
         data_dir, sources: Sequence[CoverSource], http: HttpClient | None, now: datetime,
         limit: int | None, store: ImageStore | None) -> CoverStats:
    started = time.perf_counter()
    stats = CoverStats(entity_type=entity_type, without_cover=len(entities))
    store = store or ImageStore(_covers_root(data_dir))
    usable = []
    for source in sources:
        if not source.serves(entity_type):
            continue
        if not source.enabled:
            stats.disabled_sources[source.name] = source.disabled_reason or "disabled"
            continue
        usable.append(source)
    now_iso = iso(now)
    cache = repo.cached_misses(conn, entity_type, [e.entity_id for _, e in entities])
    queue = []
    for row, entity in entities:
        cached = cache.get(entity.entity_id, {})
        active = {name for name, r in cached.items() if r["expires_at"] > now_iso}
        applicable = [s for s in usable if s.applicable(entity)]
        todo = [s for s in applicable if s.name not in active]
        if not todo:
            if applicable:
                stats.skipped_cached += 1
            else:
                stats.no_source += 1
            continue
        level = priority_of(row, retried=bool(cached))
        queue.append((PRIORITY_RANK[level], -int(row.get("track_count") or 0), entity.entity_id, level, entity,
                      todo, cached))
    queue.sort(key=lambda item: item[:3])
    if limit is not None:
        queue = queue[:limit]
    for _, _, _, level, entity, todo, cached in queue:
        stats.selected += 1
        stats.by_priority[level] += 1
        _process(conn, entity, todo, cached, store, stats, now)
    if http is not None:
        stats.http = dict(http.stats)
    stats.seconds = time.perf_counter() - started
    log.info("%s covers: %d selected, %d found, %d misses, %d skipped (cached)", entity_type, stats.selected,
             stats.found, stats.misses, stats.skipped_cached)
    return stats


def _process(conn: Any, entity: CoverEntity, todo: Sequence[CoverSource], cached: dict[str, dict],
             store: ImageStore, stats: CoverStats, now: datetime) -> None:
    """Try sources in order; the first stored picture wins. Misses and failures go to the negative cache."""
    outcomes: list[tuple[str, str, str]] = []  # (source, kind, reason)
    ranker = rank_candidates if entity.entity_type == "album" else rank_artist_candidates
    for source in todo:
        try:
            candidates = ranker(source.find(entity))
        except SourceFailure as exc:
            stats.failures[f"{source.name}:{exc.reason}"] += 1
            outcomes.append((source.name, "failure", exc.reason))
            continue
        if not candidates:
            outcomes.append((source.name, "miss", "not_found"))
            continue
        chosen, problem = _first_storable(source, candidates, store)
        if chosen is not None:
            candidate, stored = chosen
            with transaction(conn):
                repo.upsert_cover(conn, entity.entity_type, entity.entity_id, source=source.name,
                                  origin=candidate.origin, path=stored.path, sha256=stored.sha256,
                                  mime=stored.mime, width=stored.width, height=stored.height,
                                  byte_size=stored.byte_size, thumbnails=stored.thumbnails, now=iso(now))
                repo.clear_misses(conn, entity.entity_type, entity.entity_id)
            stats.found += 1
            stats.by_source[source.name] += 1
            stats.new_files += 0 if stored.already_stored else 1
            return
        stats.failures[f"{source.name}:{problem}"] += 1
        # A rejected picture (broken, bomb, wrong format) will be the same next time: cache it like a miss.
        outcomes.append((source.name, "failure" if problem in _TRANSIENT else "miss", problem))
    stats.misses += 1
    with transaction(conn):
        for name, kind, reason in outcomes:
            if reason in UNCACHED_REASONS:
                continue
            attempts = int(cached.get(name, {}).get("attempts", 0)) + 1
            repo.record_miss(conn, entity.entity_type, entity.entity_id, name, kind=kind, reason=reason,
                             now=iso(now), expires_at=expiry(now, ttl_seconds(name, kind, attempts)))


_TRANSIENT = frozenset({"timeout", "connect_error", "transport_error", "rate_limited", "server_error",
                        "circuit_open", "bad_status", "unreadable_file"})


def _first_storable(source: CoverSource, candidates: Sequence[CoverCandidate], store: ImageStore):
    """((candidate, stored image), None) for the best candidate that downloads and validates, else (None, why)."""
    problem = "no_candidate"
    for candidate in candidates[:3]:  # a few tries per source: don't download a whole gallery
        try:
            data = source.fetch(candidate)
            return (candidate, store.store(data)), None
        except SourceFailure as exc:
            problem = exc.reason
        except ImageRejected as exc:
            problem = f"rejected_{exc.reason}"
    return None, problem


def coverage_summary(conn: Any, entity_type: str) -> dict[str, Any]:
    """Catalog-wide counts for the UI: coverage %, pictures by source, cached misses and failures by reason."""
    covered, total = repo.coverage(conn, entity_type)
    return {
        "covered": covered,
        "total": total,
        "coverage_pct": round(100.0 * covered / total, 1) if total else 0.0,
        "by_source": repo.counts_by_source(conn, entity_type),
        "cached_misses": repo.misses_by_reason(conn, entity_type, kind="miss"),
        "cached_failures": repo.misses_by_reason(conn, entity_type, kind="failure"),
    }


def missing_cover_files(conn: Any, data_dir: DataDir | Path | str, entity_type: str) -> list[str]:
    """Stored paths of cover rows whose image file is gone from disk (e.g. a data dir copied without covers/)."""
    root = _covers_root(data_dir)
    return [row["path"] for row in repo.list_covers(conn, entity_type) if not (root / row["path"]).is_file()]


def open_sources(order: Sequence[str], *, lastfm_api_key: str | None, contact: str | None = None,
                 caa_base_url: str | None = None, lastfm_base_url: str | None = None,
                 http: HttpClient | None = None) -> tuple[HttpClient, list[CoverSource]]:
    """The one HttpClient (caller closes it) and the sources in the configured order, sharing it."""
    from soniquebay_assets.artwork.sources import build_sources

    owned = http is None
    http = http or HttpClient(contact=contact, secrets=[lastfm_api_key] if lastfm_api_key else ())
    options: dict[str, Any] = {"http": http, "lastfm_api_key": lastfm_api_key}
    if caa_base_url:
        options["caa_base_url"] = caa_base_url
    if lastfm_base_url:
        options["lastfm_base_url"] = lastfm_base_url
    try:
        return http, build_sources(order, **options)
    except BaseException:
        if owned:  # a bad source name must not leak the client made for it
            http.close()
        raise


CONTACT_SHEETS_KEPT = 20


def write_contact_sheet(conn: Any, data_dir: DataDir | Path | str, entity_type: str, name: str,
                        limit: int = 24) -> Path | None:
    """A PNG grid of the latest covers' 150 px thumbnails under covers/contact_sheets/; keeps the last few."""
    from soniquebay_assets.artwork.image_store import contact_sheet

    root = _covers_root(data_dir)
    thumbs = [root / rel for _, rel in repo.sample_thumbnails(conn, entity_type, limit)]
    folder = root / "contact_sheets"
    written = contact_sheet(thumbs, folder / f"{entity_type}-{name}.png")
    if written is not None:
        old = sorted(folder.glob(f"{entity_type}-*.png"), key=lambda p: p.stat().st_mtime)[:-CONTACT_SHEETS_KEPT]
        for path in old:
            path.unlink(missing_ok=True)
    return written
