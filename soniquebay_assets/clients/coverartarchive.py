"""Cover Art Archive: the front image of a release, else of its release group (https://musicbrainz.org/doc/Cover_Art_Archive/API)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from soniquebay_assets.clients.http import HttpClient, HttpError, HttpResponse

DEFAULT_BASE_URL = "https://coverartarchive.org"
# The listed thumbnail we download: big enough for the 600 px thumbnail, far lighter than many originals.
PREFERRED_THUMBNAIL = "1200"
_MBID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


@dataclass(frozen=True)
class CaaImage:
    """One image listed by the archive."""

    url: str
    is_front: bool
    types: tuple[str, ...]
    scope: str  # "release" | "release-group"
    mbid: str


class CoverArtArchiveClient:
    """Lists and downloads images; base URL configurable so tests point at a loopback server."""

    def __init__(self, http: HttpClient, base_url: str = DEFAULT_BASE_URL):
        self.http = http
        self.base_url = base_url.rstrip("/")

    def list_images(self, release_id: str | None, release_group_id: str | None) -> list[CaaImage]:
        """Images of the release; when it has none (404), those of the release group. Raises HttpError."""
        for scope, mbid in (("release", release_id), ("release-group", release_group_id)):
            if not mbid or not _MBID.match(mbid.strip()):
                continue
            images = self._index(scope, mbid.strip().lower())
            if images:
                return images
        return []

    def _index(self, scope: str, mbid: str) -> list[CaaImage]:
        status, payload = self.http.get_json(f"{self.base_url}/{scope}/{mbid}")
        if status in (400, 404):
            return []
        if payload is None:
            raise HttpError("bad_status", f"Cover Art Archive answered HTTP {status} for {scope} {mbid}",
                            status=status)
        if not isinstance(payload, dict) or not isinstance(payload.get("images"), list):
            raise HttpError("bad_json", f"Cover Art Archive {scope} {mbid}: no image list")
        images = []
        for item in payload["images"]:
            if not isinstance(item, dict):
                continue
            thumbs = item.get("thumbnails") if isinstance(item.get("thumbnails"), dict) else {}
            url = thumbs.get(PREFERRED_THUMBNAIL) or thumbs.get("large") or item.get("image")
            if not isinstance(url, str) or not url:
                continue
            types = tuple(str(t) for t in item.get("types") or ())
            images.append(CaaImage(url=url, is_front=bool(item.get("front")) or "Front" in types,
                                   types=types, scope=scope, mbid=mbid))
        return images

    def download(self, url: str, *, max_bytes: int) -> HttpResponse:
        """The image bytes (the archive redirects to its image host; the client follows, bounded)."""
        if url.startswith("/"):
            url = self.base_url + url
        response = self.http.get(url, max_bytes=max_bytes, accept="image/*")
        if response.status == 404:
            raise HttpError("image_not_found", f"{response.url}: HTTP 404", status=404)
        if not 200 <= response.status < 300:
            raise HttpError("bad_status", f"{response.url}: HTTP {response.status}", status=response.status)
        return response
