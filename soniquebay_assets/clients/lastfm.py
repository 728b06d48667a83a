"""Last.fm: album.getInfo and artist.getInfo images, artist facts (https://www.last.fm/api). Needs an API key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import unescape

from soniquebay_assets.clients.http import HttpClient, HttpError, HttpResponse, KeyedServiceClient

DEFAULT_BASE_URL = "https://ws.audioscrobbler.com/2.0/"
# Largest first; Last.fm lists the same picture at several sizes.
SIZE_ORDER = ("mega", "extralarge", "large", "medium", "small")
# Since 2019 artist.getInfo returns this grey star for every artist: a placeholder, not a picture.
PLACEHOLDER_HASHES = frozenset({"2a96cbd8b46e442fc41c2b86b821562f"})
ERROR_NOT_FOUND = 6
SERVICE = "lastfm"
RATE_PER_S = 5.0  # Last.fm asks for about 5 requests per second per key
_READ_MORE = re.compile(r"\s*<a href=\"https?://www\.last\.fm/[^\"]*\">Read more on Last\.fm</a>\.?\s*$")
_TAG = re.compile(r"<[^>]+>")
ERROR_REASONS = {10: "auth", 26: "auth", 4: "auth", 29: "rate_limited", 11: "server_error", 16: "server_error"}


def is_placeholder(url: str) -> bool:
    """True for Last.fm's well-known blank/star placeholder images (treated as a miss)."""
    lowered = url.lower()
    return any(h in lowered for h in PLACEHOLDER_HASHES)


@dataclass(frozen=True)
class LastfmImage:
    url: str
    size: str


@dataclass(frozen=True)
class LastfmArtist:
    """What artist.getInfo says about an artist: plain-text summary, top tags, listeners, similar artists."""

    name: str
    mbid: str | None = None
    url: str | None = None
    summary: str = ""
    listeners: int | None = None
    tags: list[str] = field(default_factory=list)
    similar: list[str] = field(default_factory=list)


def _plain_summary(html: object) -> str:
    text = _READ_MORE.sub("", str(html or ""))
    return " ".join(unescape(_TAG.sub("", text)).split())


def _names(block: object, key: str) -> list[str]:
    items = block.get(key) if isinstance(block, dict) else None
    if isinstance(items, dict):  # a single item comes as an object, not a list
        items = [items]
    out = []
    for item in items or []:
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name.strip():
            out.append(name.strip())
    return out


class LastfmClient(KeyedServiceClient):
    """Looks up album and artist images. The key is sent as a query parameter and redacted everywhere."""

    SERVICE, RATE_PER_S = SERVICE, RATE_PER_S

    def __init__(self, http: HttpClient, api_key: str | None, base_url: str = DEFAULT_BASE_URL):
        super().__init__(http, api_key, base_url)

    def album_images(self, artist: str, album: str, mbid: str | None = None) -> list[LastfmImage]:
        params = {"method": "album.getinfo", "artist": artist, "album": album, "autocorrect": "1"}
        if mbid:
            params["mbid"] = mbid
        return self._images(params, "album")

    def artist_images(self, artist: str, mbid: str | None = None) -> list[LastfmImage]:
        params = {"method": "artist.getinfo", "artist": artist, "autocorrect": "1"}
        if mbid:
            params["mbid"] = mbid
        return self._images(params, "artist")

    def artist_info(self, artist: str, mbid: str | None = None) -> LastfmArtist | None:
        """Summary, top tags, listeners and similar artists; None when Last.fm does not know the artist."""
        params = {"method": "artist.getinfo", "artist": artist, "autocorrect": "1"}
        if mbid:
            params["mbid"] = mbid
        payload = self._call(params)
        entity = payload.get("artist") if payload else None
        if not isinstance(entity, dict):
            return None
        stats = entity.get("stats") if isinstance(entity.get("stats"), dict) else {}
        listeners = str(stats.get("listeners", "")).strip()
        bio = entity.get("bio") if isinstance(entity.get("bio"), dict) else {}
        return LastfmArtist(
            name=str(entity.get("name") or artist), mbid=str(entity.get("mbid") or "") or None,
            url=str(entity.get("url") or "") or None, summary=_plain_summary(bio.get("summary")),
            listeners=int(listeners) if listeners.isdigit() else None,
            tags=_names(entity.get("tags"), "tag"), similar=_names(entity.get("similar"), "artist"))

    def _images(self, params: dict[str, str], root: str) -> list[LastfmImage]:
        payload = self._call(params)
        if payload is None:
            return []
        entity = payload.get(root)
        if not isinstance(entity, dict):
            return []
        images = []
        for item in entity.get("image") or []:
            if not isinstance(item, dict):
                continue
            url, size = item.get("#text"), item.get("size", "")
            if isinstance(url, str) and url.strip() and not is_placeholder(url):
                images.append(LastfmImage(url=url.strip(), size=str(size)))
        rank = {name: i for i, name in enumerate(SIZE_ORDER)}
        return sorted(images, key=lambda im: rank.get(im.size, len(SIZE_ORDER)))

    def _call(self, params: dict[str, str]) -> dict | None:
        """The JSON object Last.fm answered, None for "not found"; raises HttpError otherwise."""
        if not self.api_key:
            raise HttpError("disabled", "Last.fm has no API key (set SONIQUEBAY_LASTFM_API_KEY)")
        response = self.http.get(self.base_url, params={**params, "api_key": self.api_key, "format": "json"},
                                 accept="application/json", max_bytes=2 * 1024 * 1024, service=SERVICE)
        # Last.fm reports errors as JSON {"error": N, "message": ...}, with HTTP 200 or 4xx.
        if response.status >= 500:
            raise HttpError("server_error", f"Last.fm HTTP {response.status}", status=response.status)
        payload = response.json()
        if not isinstance(payload, dict):
            raise HttpError("bad_json", "Last.fm answered something other than a JSON object")
        if "error" in payload:
            code = payload.get("error")
            if code == ERROR_NOT_FOUND:
                return None
            reason = ERROR_REASONS.get(code, "api_error") if isinstance(code, int) else "api_error"
            raise HttpError(reason, f"Last.fm error {code}: {self.http.redact(payload.get('message', ''))}",
                            status=response.status)
        if response.status >= 400:
            raise HttpError("bad_status", f"Last.fm HTTP {response.status}", status=response.status)
        return payload

    def download(self, url: str, *, max_bytes: int) -> HttpResponse:
        response = self.http.get(url, max_bytes=max_bytes, accept="image/*")
        if not 200 <= response.status < 300:
            reason = "image_not_found" if response.status == 404 else "bad_status"
            raise HttpError(reason, f"{response.url}: HTTP {response.status}", status=response.status)
        return response
