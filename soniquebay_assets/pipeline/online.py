"""Online metadata stage: albums matched to MusicBrainz releases, artists given MusicBrainz ids and Last.fm facts,
tracks without a usable title or artist identified by AcoustID. The files' tags are never changed.

Network calls happen outside any database transaction; each entity is written in its own. A service that cannot
be reached (refused, DNS failure) is not asked again in the run: its work waits in the deferred queue with
backoff. Slow or failing answers (timeouts, 5xx, rate limits) also go back to the queue; unusable answers (bad
JSON, huge bodies) and "nothing found" go to the negative cache with a time to live.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from soniquebay_assets.catalog import deferred
from soniquebay_assets.catalog import external as repo
from soniquebay_assets.catalog.analysis import replace_normalized_genres
from soniquebay_assets.catalog.db import transaction
from soniquebay_assets.catalog.negative_cache import DAY, expiry, failure_ttl_s, iso
from soniquebay_assets.clients.acoustid import AcoustidClient
from soniquebay_assets.clients.http import HttpClient, HttpError
from soniquebay_assets.clients.lastfm import LastfmClient
from soniquebay_assets.clients.musicbrainz import MusicBrainzClient
from soniquebay_assets.domain import online_match as match
from soniquebay_assets.domain.albums import UNKNOWN_ARTIST
from soniquebay_assets.domain.cover_choice import is_various_artists
from soniquebay_assets.domain.genres import whitelisted_genres

log = logging.getLogger(__name__)

DEFERRED_KIND = "enrichment"  # drained by the deferred enrichment schedule with the audio analysis
# Positive answers are kept this long before being asked again; "nothing found" is believed this long.
RESPONSE_TTL_S = {"musicbrainz_search": 7 * DAY, "musicbrainz_release": 30 * DAY}
ARTIST_TTL_S = {"musicbrainz": 180 * DAY, "lastfm": 30 * DAY}
MISS_TTL_S = 30 * DAY
# Unusable answers (bad JSON, a body over the size cap, an unexpected status) are retried sooner, doubling:
# negative_cache.failure_ttl_s.
OFFLINE_REASONS = frozenset({"connect_error"})
TRANSIENT_REASONS = frozenset({"timeout", "transport_error", "server_error", "rate_limited", "circuit_open"})
CONFIG_REASONS = frozenset({"auth", "disabled"})
# An answer whose JSON parsed but whose shape surprised the parser: cached like malformed JSON.
SHAPE_ERRORS = (ValueError, TypeError, KeyError, AttributeError)


@dataclass
class OnlineServices:
    """The one HttpClient and the three service clients sharing it (caller closes)."""

    http: HttpClient
    musicbrainz: MusicBrainzClient
    lastfm: LastfmClient
    acoustid: AcoustidClient

    def close(self) -> None:
        self.http.close()


def open_services(*, musicbrainz_url: str, lastfm_url: str, acoustid_url: str, lastfm_api_key: str | None,
                  acoustid_api_key: str | None, contact: str | None = None,
                  http: HttpClient | None = None) -> OnlineServices:
    """Clients for the three services over one HttpClient that does not wait on an unreachable network."""
    http = http or HttpClient(contact=contact, retry_connect_errors=False,
                              secrets=[k for k in (lastfm_api_key, acoustid_api_key) if k])
    return OnlineServices(http=http, musicbrainz=MusicBrainzClient(http, musicbrainz_url),
                          lastfm=LastfmClient(http, lastfm_api_key, lastfm_url),
                          acoustid=AcoustidClient(http, acoustid_api_key, acoustid_url))


def decision_services() -> OnlineServices:
    """The client a user's decision needs (MusicBrainz, to look up an accepted release), from the settings."""
    from soniquebay_assets import settings

    return open_services(musicbrainz_url=settings.musicbrainz_url(), lastfm_url=settings.lastfm_url(),
                         acoustid_url=settings.acoustid_url(), lastfm_api_key=None, acoustid_api_key=None,
                         contact=settings.http_contact())


@dataclass
class OnlineStats:
    """What one run did; becomes materialization metadata and the CLI JSON."""

    albums_selected: int = 0
    matched: int = 0
    candidates: int = 0
    unmatched: int = 0
    album_failures: int = 0
    artists_selected: int = 0
    artist_ids_found: int = 0
    lastfm_found: int = 0
    lastfm_not_found: int = 0
    tracks_selected: int = 0
    tracks_identified: int = 0
    deferred_retry: int = 0  # entities back in the deferred queue with backoff (offline, timeouts, 5xx)
    deferred_later: int = 0  # entities left for a later run by the per-run caps
    musicbrainz_requests: int = 0
    cache_hits: int = 0
    failures: Counter = field(default_factory=Counter)  # "service:reason"
    offline: list[str] = field(default_factory=list)
    disabled: dict[str, str] = field(default_factory=dict)
    genres_added: Counter = field(default_factory=Counter)
    genre_examples: list[str] = field(default_factory=list)
    http: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # (entity_type, entity_id, shard, why) to put back in the deferred queue
    retry: list[tuple[str, int, str, str]] = field(default_factory=list)
    later: list[tuple[str, int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("retry", "later")}
        for key in ("failures", "genres_added"):
            out[key] = dict(out[key])
        out["musicbrainz_requests_per_album"] = (
            round(self.musicbrainz_requests / self.albums_selected, 2) if self.albums_selected else 0.0)
        out["seconds"] = round(self.seconds, 3)
        return out


class _Run:
    """State of one run: which services are still usable, the caches, and the stats."""

    def __init__(self, conn: Any, services: OnlineServices, now: datetime, stats: OnlineStats):
        self.conn, self.services, self.now, self.stats = conn, services, now, stats
        self.now_iso = iso(now)
        self.unusable: dict[str, str] = {}  # service -> why it is skipped for the rest of the run

    def usable(self, service: str) -> bool:
        return service not in self.unusable

    def cached(self, source: str, key: str, ttl_s: int, fetch: Callable[[], Any]) -> Any:
        """A response from the catalog's response cache, else fetched (and stored when not None)."""
        hit = repo.cache_get(self.conn, source, key, self.now_iso)
        if hit is not None:
            self.stats.cache_hits += 1
            return hit
        body = fetch()
        if body is not None:
            with transaction(self.conn):
                repo.cache_put(self.conn, source, key, body, now=self.now_iso,
                               expires_at=expiry(self.now, ttl_s))
        return body

    def failed(self, service: str, exc: HttpError, entity_type: str, entity_id: int, shard: str) -> None:
        """Sort a failure: offline or transient -> deferred retry; config -> service off; else negative cache."""
        self.stats.failures[f"{service}:{exc.reason}"] += 1
        if exc.reason in OFFLINE_REASONS:
            self.unusable[service] = "offline"
            if service not in self.stats.offline:
                self.stats.offline.append(service)
            log.warning("%s unreachable (%s): its work waits in the deferred queue", service, exc.reason)
        if exc.reason in OFFLINE_REASONS or exc.reason in TRANSIENT_REASONS:
            self.stats.retry.append((entity_type, entity_id, shard, f"{service}: {exc}"))
            return
        if exc.reason in CONFIG_REASONS:
            self.unusable[service] = exc.reason
            self.stats.disabled[service] = str(exc)
            return
        attempts = repo.miss_attempts(self.conn, entity_type, entity_id, service) + 1
        self.miss(entity_type, entity_id, service, kind="failure", reason=exc.reason,
                  ttl_s=failure_ttl_s(attempts))

    def miss(self, entity_type: str, entity_id: int, source: str, *, kind: str = "miss", reason: str = "not_found",
             ttl_s: int = MISS_TTL_S) -> None:
        with transaction(self.conn):
            repo.record_miss(self.conn, entity_type, entity_id, source, kind=kind, reason=reason,
                             now=self.now_iso, expires_at=expiry(self.now, ttl_s))


def fetch_external_metadata(conn: Any, shards: Sequence[str], *, services: OnlineServices,
                            now: datetime | None = None, max_albums: int | None = None,
                            max_artists: int | None = None, max_tracks: int | None = None,
                            claim_id: str | None = None) -> OnlineStats:
    """Albums, artists and tracks of `shards` that still need online facts; work not done goes back to the
    deferred queue (the claimed items of `claim_id` when the run is a deferred one)."""
    started = time.perf_counter()
    stats = OnlineStats()
    run = _Run(conn, services, now or datetime.now(UTC), stats)
    shards = sorted(shards)
    with transaction(conn):
        repo.purge_expired_cache(conn, run.now_iso)
        repo.delete_orphans(conn)
    http_before = dict(services.http.stats)
    _match_albums(run, shards, max_albums)
    genres_changed = _lookup_artists(run, shards, max_artists)
    _identify_tracks(run, shards, max_tracks)
    if genres_changed:
        _merge_genres(run, shards)
    _requeue(conn, stats, claim_id, run.now)
    stats.http = {k: v - http_before.get(k, 0) for k, v in services.http.stats.items()}
    stats.seconds = time.perf_counter() - started
    log.info("online metadata: %d albums (%d matched, %d candidates, %d unmatched), %d artists, %d tracks; "
             "%d back in the deferred queue", stats.albums_selected, stats.matched, stats.candidates,
             stats.unmatched, stats.artists_selected, stats.tracks_selected, stats.deferred_retry)
    return stats


# -- albums --------------------------------------------------------------------------------------------------


def _match_albums(run: _Run, shards: Sequence[str], limit: int | None) -> None:
    rows = repo.albums_to_match(run.conn, shards, run.now_iso)
    if limit is not None and len(rows) > limit:
        run.stats.later += [("album", r["album_id"], r["shard"]) for r in rows[limit:]]
        rows = rows[:limit]
    for row in rows:
        if row["title_from_fallback"] and row["album_artist"] == UNKNOWN_ARTIST:
            _nothing_to_search(run, row)
            continue
        if not run.usable("musicbrainz"):
            run.stats.retry.append(("album", row["album_id"], row["shard"], f"musicbrainz {run.unusable['musicbrainz']}"))
            continue
        run.stats.albums_selected += 1
        try:
            _match_album(run, row)
        except HttpError as exc:
            run.stats.album_failures += 1
            run.failed("musicbrainz", exc, "album", row["album_id"], row["shard"])
        except SHAPE_ERRORS as exc:
            run.stats.album_failures += 1
            run.failed("musicbrainz", _bad_answer(exc), "album", row["album_id"], row["shard"])


def _nothing_to_search(run: _Run, row: dict[str, Any]) -> None:
    """A folder name and no artist: a search would only return strangers' albums."""
    with transaction(run.conn):
        repo.save_album_match(run.conn, row["album_id"], status="unmatched", source="musicbrainz", best=None,
                              album_track_count=int(row["track_count"]), candidates=[], now=run.now_iso)
    run.miss("album", row["album_id"], "musicbrainz", reason="no_usable_tags")
    run.stats.unmatched += 1


def _bad_answer(exc: Exception) -> HttpError:
    return HttpError("bad_answer", f"unexpected answer shape: {type(exc).__name__}")


def _mb_call(run: _Run, fetch: Callable[[], Any]) -> Callable[[], Any]:
    def counted() -> Any:
        run.stats.musicbrainz_requests += 1
        return fetch()
    return counted


def _match_album(run: _Run, row: dict[str, Any]) -> None:
    """Search, look the best one or two releases up, decide and store."""
    mb = run.services.musicbrainz
    tracks = repo.album_tracks(run.conn, row["album_id"])
    album = match.AlbumFacts(title=row["title"], album_artist=row["album_artist"],
                             durations_s=tuple(t["duration_s"] for t in tracks),
                             compilation=bool(row["is_compilation"]))
    search_key = f"release|{match.normalize_text(album.title)}|{match.normalize_text(album.album_artist)}|" \
                 f"{album.track_count}"
    artist = "" if album.album_artist == UNKNOWN_ARTIST else album.album_artist
    payload = run.cached("musicbrainz", search_key, RESPONSE_TTL_S["musicbrainz_search"],
                         _mb_call(run, lambda: mb.search_releases(album.title, artist, album.track_count)))
    ranked = match.rank(album, match.parse_search(payload or {}))
    looked_up: list[match.ReleaseCandidate] = []
    # One lookup for the best search result; a second only when the first disappoints and the runner-up could
    # still reach the threshold: at most three requests per album.
    for position, candidate in enumerate(ranked[:2]):
        if position == 1 and (not looked_up or match.is_confident(looked_up[0])
                              or candidate.score < match.MATCH_THRESHOLD):
            break
        release = run.cached("musicbrainz", f"lookup|{candidate.release_id}", RESPONSE_TTL_S["musicbrainz_release"],
                             _mb_call(run, lambda rid=candidate.release_id: mb.release(rid)))
        full = match.parse_release(release) if release else None
        if full is not None:
            full.service_score = candidate.service_score
            looked_up.append(match.score_candidate(album, full))
    decision = match.decide(album, looked_up, [c for c in ranked if c.release_id not in
                                               {f.release_id for f in looked_up}])
    summaries = [c.summary() for c in decision.candidates]
    with transaction(run.conn):
        repo.save_album_match(run.conn, row["album_id"], status=decision.status, source="musicbrainz",
                              best=decision.best.summary() if decision.best else None,
                              album_track_count=album.track_count, candidates=summaries, now=run.now_iso)
        if decision.status == "unmatched":
            repo.record_miss(run.conn, "album", row["album_id"], "musicbrainz", kind="miss", reason="not_found",
                             now=run.now_iso, expires_at=expiry(run.now, MISS_TTL_S))
        else:
            repo.clear_miss(run.conn, "album", row["album_id"], "musicbrainz")
        if decision.status == "matched" and decision.best is not None:
            _save_release_facts(run, row["album_id"], tracks, decision.best)
            deferred.enqueue_for_albums(run.conn, [row["album_id"]], kinds=("covers",))
    setattr(run.stats, decision.status, getattr(run.stats, decision.status) + 1)


def _save_release_facts(run: _Run, album_id: int, tracks: list[dict], best: match.ReleaseCandidate) -> None:
    """Recording ids per track (paired in disc/track order) and the ids of the album's artists from the release's
    and its tracks' artist credits (no extra request). The caller asks the covers stage to look again: the
    release id makes Cover Art Archive reachable."""
    recordings = best.recording_ids or ()
    rows = [(t["track_id"], "musicbrainz", rec, None, None, round(best.score, 4), run.now_iso)
            for t, rec in zip(tracks, recordings, strict=False) if rec]
    repo.save_track_external(run.conn, rows)
    credited = {match.normalize_text(name): mbid for name, mbid in best.artist_ids.items()}
    for artist in repo.album_credited_artists(run.conn, album_id):
        mbid = credited.get(match.normalize_text(artist["name"]))
        if mbid and not artist["musicbrainz_artist_id"]:
            repo.save_artist_external(run.conn, artist["artist_id"], "musicbrainz", now=run.now_iso,
                                      expires_at=expiry(run.now, ARTIST_TTL_S["musicbrainz"]),
                                      musicbrainz_artist_id=mbid, score=round(best.score, 4))
            run.stats.artist_ids_found += 1


# -- artists -------------------------------------------------------------------------------------------------


def _lookup_artists(run: _Run, shards: Sequence[str], limit: int | None) -> set[int]:
    sources = ["musicbrainz"]
    if run.services.lastfm.enabled:
        sources.append("lastfm")
    else:
        run.stats.disabled.setdefault("lastfm", "no API key (set SONIQUEBAY_LASTFM_API_KEY)")
    rows = [r for r in repo.artists_to_lookup(run.conn, shards, run.now_iso, sources)
            if not is_various_artists(r["name"], r["musicbrainz_artist_id"])]
    for row in rows:  # a tagged artist id needs no search
        if row["musicbrainz_artist_id"] and "musicbrainz" in row["due"]:
            row["due"].remove("musicbrainz")
    rows = [r for r in rows if r["due"]]
    if limit is not None and len(rows) > limit:
        run.stats.later += [("artist", r["artist_id"], r["shard"]) for r in rows[limit:]]
        rows = rows[:limit]
    changed: set[int] = set()
    for row in rows:
        run.stats.artists_selected += 1
        mbid = row["musicbrainz_artist_id"]
        for source in row["due"]:
            if not run.usable(source):
                if run.unusable[source] == "offline":
                    run.stats.retry.append(("artist", row["artist_id"], row["shard"], f"{source} offline"))
                continue
            try:
                if source == "musicbrainz":
                    mbid = _artist_id(run, row) or mbid
                elif _lastfm_artist(run, row, mbid):
                    changed.add(row["artist_id"])
            except HttpError as exc:
                run.failed(source, exc, "artist", row["artist_id"], row["shard"])
            except SHAPE_ERRORS as exc:
                run.failed(source, _bad_answer(exc), "artist", row["artist_id"], row["shard"])
    return changed


def _artist_id(run: _Run, row: dict[str, Any]) -> str | None:
    run.stats.musicbrainz_requests += 1
    payload = run.services.musicbrainz.search_artists(row["name"])
    mbid, similarity = match.artist_id_from_search(row["name"], payload)
    if mbid is None:
        run.miss("artist", row["artist_id"], "musicbrainz")
        return None
    with transaction(run.conn):
        repo.save_artist_external(run.conn, row["artist_id"], "musicbrainz", now=run.now_iso,
                                  expires_at=expiry(run.now, ARTIST_TTL_S["musicbrainz"]),
                                  musicbrainz_artist_id=mbid, score=round(similarity, 4))
        repo.clear_miss(run.conn, "artist", row["artist_id"], "musicbrainz")
    run.stats.artist_ids_found += 1
    return mbid


def _lastfm_artist(run: _Run, row: dict[str, Any], mbid: str | None) -> bool:
    """Store Last.fm's facts and the whitelisted genres of its tags; True when genres were stored."""
    info = run.services.lastfm.artist_info(row["name"], mbid)
    if info is None:
        run.stats.lastfm_not_found += 1
        run.miss("artist", row["artist_id"], "lastfm")
        return False
    genres = whitelisted_genres(info.tags)
    with transaction(run.conn):
        repo.save_artist_external(run.conn, row["artist_id"], "lastfm", now=run.now_iso,
                                  expires_at=expiry(run.now, ARTIST_TTL_S["lastfm"]),
                                  summary=info.summary or None, listeners=info.listeners, tags=info.tags,
                                  similar=info.similar, url=info.url)
        repo.replace_artist_genres(run.conn, row["artist_id"], genres, "lastfm")
        repo.clear_miss(run.conn, "artist", row["artist_id"], "lastfm")
    run.stats.lastfm_found += 1
    return bool(genres)


# -- tracks --------------------------------------------------------------------------------------------------


def _identify_tracks(run: _Run, shards: Sequence[str], limit: int | None) -> None:
    from soniquebay_assets.library.fingerprint import FingerprintError, fingerprint_file, fpcalc_path

    if not run.services.acoustid.enabled:
        run.stats.disabled.setdefault("acoustid", "no API key (set SONIQUEBAY_ACOUSTID_API_KEY)")
        return
    if fpcalc_path() is None:
        run.stats.disabled["acoustid"] = "fpcalc not found (install libchromaprint-tools)"
        return
    rows = repo.tracks_to_identify(run.conn, shards, run.now_iso)
    if limit is not None and len(rows) > limit:
        run.stats.later += [("track", r["track_id"], r["shard"]) for r in rows[limit:]]
        rows = rows[:limit]
    for row in rows:
        if not run.usable("acoustid"):
            if run.unusable["acoustid"] == "offline":
                run.stats.retry.append(("track", row["track_id"], row["shard"], "acoustid offline"))
            continue
        run.stats.tracks_selected += 1
        try:
            fingerprint = fingerprint_file(row["path"])
        except FingerprintError as exc:
            run.stats.failures[f"fpcalc:{exc.reason}"] += 1
            run.miss("track", row["track_id"], "acoustid", kind="failure", reason=exc.reason)
            continue
        try:
            results = run.services.acoustid.lookup(fingerprint.fingerprint, fingerprint.duration_s)
            best = match.acoustid_best(results)
        except HttpError as exc:
            run.failed("acoustid", exc, "track", row["track_id"], row["shard"])
            continue
        except SHAPE_ERRORS as exc:
            run.failed("acoustid", _bad_answer(exc), "track", row["track_id"], row["shard"])
            continue
        if best is None:
            run.miss("track", row["track_id"], "acoustid")
            continue
        with transaction(run.conn):
            repo.save_track_external(run.conn, [(row["track_id"], "acoustid", best["recording_id"], best["title"],
                                                 best["artist"], round(best["score"], 4), run.now_iso)])
            repo.clear_miss(run.conn, "track", row["track_id"], "acoustid")
        run.stats.tracks_identified += 1


# -- genres and the deferred queue ---------------------------------------------------------------------------


def _merge_genres(run: _Run, shards: Sequence[str]) -> None:
    """Normalized genres of the shards' tracks: the files' own first, then whitelisted Last.fm genres."""
    from soniquebay_assets.pipeline.enrich import merged_normalized_genres

    merged, added = merged_normalized_genres(run.conn, list(shards))
    with transaction(run.conn):
        replace_normalized_genres(run.conn, merged)
    for track_id, genres in added.items():
        run.stats.genres_added.update(genres)
        if len(run.stats.genre_examples) < 10:
            run.stats.genre_examples.append(f"track {track_id}: +{', '.join(genres)}")


def _requeue(conn: Any, stats: OnlineStats, claim_id: str | None, now: datetime) -> None:
    """Work not done goes back to the deferred queue: failures with backoff, capped-out work as soon as due."""
    held = deferred.claimed_entities(conn, claim_id, DEFERRED_KIND) if claim_id else {}
    stamp = now.timestamp()
    retry_ids, retry_new, errors = [], {}, []
    for entity_type, entity_id, shard, why in stats.retry:
        work_id = held.get((entity_type, entity_id))
        if work_id is not None:
            retry_ids.append(work_id)
        else:
            retry_new.setdefault(entity_type, {})[entity_id] = shard
        errors.append(why)
    if retry_ids:
        deferred.fail(conn, retry_ids, "; ".join(sorted(set(errors)))[:2000], now=stamp)
    for entity_type, entities in retry_new.items():
        deferred.enqueue(conn, DEFERRED_KIND, entity_type, entities.items(), delay_s=deferred.backoff_s(1),
                         now=stamp)
    later_ids, later_new = [], {}
    for entity_type, entity_id, shard in stats.later:
        work_id = held.get((entity_type, entity_id))
        if work_id is not None:
            later_ids.append(work_id)
        else:
            later_new.setdefault(entity_type, {})[entity_id] = shard
    if later_ids:
        deferred.release(conn, later_ids, now=stamp)
    for entity_type, entities in later_new.items():
        deferred.enqueue(conn, DEFERRED_KIND, entity_type, entities.items(), now=stamp)
    stats.deferred_retry = len(stats.retry)
    stats.deferred_later = len(stats.later)


# -- the user's decision -------------------------------------------------------------------------------------


def decide_album(conn: Any, album_id: int, *, accept: str | None, services: OnlineServices | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
    """Accept a release for an album (looked up for its release group, label, date and recordings) or reject
    the candidates; the decision is the user's and automatic matching will not overwrite it."""
    now = now or datetime.now(UTC)
    album = repo.get_album(conn, album_id)
    if album is None:
        raise LookupError(f"no album with id {album_id}: `soniquebay albums --json` lists them")
    tracks = repo.album_tracks(conn, album_id)
    if accept is None:
        with transaction(conn):
            repo.save_album_match(conn, album_id, status="unmatched", source="user", best=None,
                                  album_track_count=len(tracks), candidates=album["candidates"], now=iso(now),
                                  decided_by="user")
        return repo.get_album(conn, album_id) or {}
    if services is None:
        raise ValueError("accepting a release needs the MusicBrainz client")
    release = services.musicbrainz.release(accept)
    full = match.parse_release(release) if release else None
    if full is None:
        raise LookupError(f"MusicBrainz has no release {accept}")
    facts = match.AlbumFacts(title=album["title"], album_artist=album["album_artist"],
                             durations_s=tuple(t["duration_s"] for t in tracks))
    match.score_candidate(facts, full)
    run = _Run(conn, services, now, OnlineStats())
    with transaction(conn):
        repo.save_album_match(conn, album_id, status="matched", source="musicbrainz", best=full.summary(),
                              album_track_count=len(tracks), candidates=album["candidates"], now=iso(now),
                              decided_by="user")
        _save_release_facts(run, album_id, tracks, full)
        deferred.enqueue_for_albums(conn, [album_id], kinds=("covers",))
    return repo.get_album(conn, album_id) or {}


def run_summary(conn: Any, now: datetime | None = None) -> dict[str, Any]:
    """Catalog-wide counts for the UI: albums by match status and cached misses by reason."""
    return {"albums_by_status": repo.match_counts(conn),
            "cached_misses": repo.misses_by_reason(conn, iso(now or datetime.now(UTC)))}
