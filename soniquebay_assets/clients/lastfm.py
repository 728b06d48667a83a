"""Last.fm: album.getInfo and artist.getInfo images (https://www.last.fm/api). Needs an API key."""

from __future__ import annotations

from dataclasses import dataclass

from soniquebay_assets.clients.http import HttpClient, HttpError, HttpResponse

DEFAULT_BASE_URL = "https://ws.audioscrobbler.com/2.0/"
# Largest first; Last.fm lists the same picture at several sizes.
SIZE_ORDER = ("mega", "extralarge", "large", "medium", "small")
# Since 2019 artist.getInfo returns this grey star for every artist: a placeholder, not a picture.
PLACEHOLDER_HASHES = frozenset({"2a96cbd8b46e442fc41c2b86b821562f"})
ERROR_NOT_FOUND = 6
ERROR_REASONS = {10: "auth", 26: "auth", 4: "auth", 29: "rate_limited", 11: "server_error", 16: "server_error"}


def is_placeholder(url: str) -> bool:
    """True for Last.fm's well-known blank/star placeholder images (treated as a miss)."""
    lowered = url.lower()
    return any(h in lowered for h in PLACEHOLDER_HASHES)


@dataclass(frozen=True)
class LastfmImage:
    url: str
    size: str


class LastfmClient:
    """Looks up album and artist images. The key is sent as a query parameter and redacted everywhere."""

    def __init__(self, http: HttpClient, api_key: str | None, base_url: str = DEFAULT_BASE_URL):
        self.http = http
        self.api_key = (api_key or "").strip() or None
        self.base_url = base_url
        if self.api_key:
            http.add_secret(self.api_key)

    @property
    def enabled(self) -> bool:
        return self.api_key is not None

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

    def _images(self, params: dict[str, str], root: str) -> list[LastfmImage]:
        if not self.api_key:
            raise HttpError("disabled", "Last.fm has no API key (set SONIQUEBAY_LASTFM_API_KEY)")
        response = self.http.get(self.base_url, params={**params, "api_key": self.api_key, "format": "json"},
                                 accept="application/json", max_bytes=2 * 1024 * 1024)
        # Last.fm reports errors as JSON {"error": N, "message": ...}, with HTTP 200 or 4xx.
        if response.status >= 500:
            raise HttpError("server_error", f"Last.fm HTTP {response.status}", status=response.status)
        payload = response.json()
        if not isinstance(payload, dict):
            raise HttpError("bad_json", "Last.fm answered something other than a JSON object")
        if "error" in payload:
            code = payload.get("error")
            if code == ERROR_NOT_FOUND:
                return []
            reason = ERROR_REASONS.get(code, "api_error") if isinstance(code, int) else "api_error"
            raise HttpError(reason, f"Last.fm error {code}: {self.http.redact(payload.get('message', ''))}",
                            status=response.status)
        if response.status >= 400:
            raise HttpError("bad_status", f"Last.fm HTTP {response.status}", status=response.status)
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

    def download(self, url: str, *, max_bytes: int) -> HttpResponse:
        response = self.http.get(url, max_bytes=max_bytes, accept="image/*")
        if not 200 <= response.status < 300:
            reason = "image_not_found" if response.status == 404 else "bad_status"
            raise HttpError(reason, f"{response.url}: HTTP {response.status}", status=response.status)
        return response
