"""MusicBrainz web service: release and artist search, release lookup (https://musicbrainz.org/doc/MusicBrainz_API).

JSON through `/ws/2/...?fmt=json`; at most 1 request/s (the service answers 503 beyond), whatever host serves it.
Answers are returned as parsed JSON; `domain.online_match` reads them.
"""

from __future__ import annotations

import re
from typing import Any

from soniquebay_assets.clients.http import HttpClient, HttpError

SERVICE = "musicbrainz"
RATE_PER_S = 1.0
DEFAULT_BASE_URL = "https://musicbrainz.org"
RELEASE_INCLUDES = "recordings+release-groups+labels+artist-credits"
_LUCENE_SPECIAL = re.compile(r'([+\-&|!(){}\[\]^"~*?:\\/])')
_MBID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def lucene_phrase(text: str) -> str:
    """A quoted Lucene phrase with the query syntax's special characters escaped."""
    return '"' + _LUCENE_SPECIAL.sub(r"\\\1", " ".join(text.split())) + '"'


def is_mbid(value: str | None) -> bool:
    return bool(value) and bool(_MBID.match(value.strip()))


class MusicBrainzClient:
    """Search and lookup; every call is one request through the shared, rate-limited client."""

    def __init__(self, http: HttpClient, base_url: str = DEFAULT_BASE_URL):
        self.http = http
        self.base_url = base_url.rstrip("/")
        http.set_service_rate(SERVICE, RATE_PER_S)

    def search_releases(self, title: str, artist: str, track_count: int | None, *, limit: int = 5) -> dict:
        """Releases matching title and artist (and track count when known), best first, with MusicBrainz's score."""
        terms = [f"release:{lucene_phrase(title)}"]
        if artist:
            terms.append(f"artist:{lucene_phrase(artist)}")
        if track_count:
            terms.append(f"tracks:{int(track_count)}")
        return self._get("/ws/2/release", {"query": " AND ".join(terms), "limit": str(limit)}) or {}

    def release(self, release_id: str) -> dict | None:
        """One release with its media, tracks, recordings, release group, labels and artist credits; None if unknown."""
        if not is_mbid(release_id):
            raise HttpError("bad_request", f"not a MusicBrainz id: {release_id!r}")
        return self._get(f"/ws/2/release/{release_id.strip().lower()}", {"inc": RELEASE_INCLUDES})

    def search_artists(self, name: str, *, limit: int = 3) -> dict:
        return self._get("/ws/2/artist", {"query": f"artist:{lucene_phrase(name)}", "limit": str(limit)}) or {}

    def _get(self, path: str, params: dict[str, str]) -> Any:
        response = self.http.get(self.base_url + path, params={**params, "fmt": "json"}, accept="application/json",
                                 max_bytes=4 * 1024 * 1024, service=SERVICE)
        if response.status == 404:
            return None
        if not 200 <= response.status < 300:
            reason = "auth" if response.status in (401, 403) else "bad_status"
            raise HttpError(reason, f"MusicBrainz HTTP {response.status} for {path}", status=response.status)
        payload = response.json()
        if not isinstance(payload, dict):
            raise HttpError("bad_json", f"MusicBrainz {path}: not a JSON object")
        return payload
