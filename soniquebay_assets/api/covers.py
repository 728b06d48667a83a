"""GET /covers/{entity_type}/{id}?size=150|300|600: a stored cover from the content-addressed store.

Only catalog ids reach the store: the file is the one the covers table names, resolved under the store's root.
The ETag is the picture's content hash, so revalidation costs one indexed lookup and no file read; a URL that
carries the hash (`v=`, as the page and the GraphQL `url` field give) is cached for a year."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from soniquebay_assets.artwork.image_store import THUMBNAIL_SIZES
from soniquebay_assets.catalog import browse, db

log = logging.getLogger("soniquebay.api")
ENTITY_TYPES = browse.COVER_ENTITY_TYPES
SHORT_MAX_AGE_S = 300
LONG_MAX_AGE_S = 365 * 24 * 3600


class CoverStore:
    """The covers folder plus one reader connection used from the event loop (single indexed lookups)."""

    def __init__(self, root: Path, catalog_url: str) -> None:
        self.root = Path(root).resolve()
        self.catalog_url = catalog_url
        self._conn: Any = None

    def lookup(self, entity_type: str, entity_id: int, size: int) -> browse.CoverFile | None:
        if self._conn is None:
            self._conn = db.connect_reader(self.catalog_url)
        try:
            return browse.cover_file(self._conn, entity_type, entity_id, size)
        except Exception:
            self.close()  # a broken connection is reopened on the next request
            raise

    def file(self, relative: str) -> Path | None:
        """The stored file, never outside the store's root."""
        path = (self.root / relative).resolve()
        return path if path.is_relative_to(self.root) else None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _not_found(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=404)


async def cover_endpoint(request: Request) -> Response:
    api = request.app.state.api
    entity_type = request.path_params["entity_type"]
    entity_id = request.path_params["entity_id"]
    size_text = request.query_params.get("size", "300")
    if entity_type not in ENTITY_TYPES:
        return _not_found(f"covers are kept for {', '.join(ENTITY_TYPES)}, not {entity_type[:40]!r}")
    if size_text not in {str(s) for s in THUMBNAIL_SIZES}:
        return JSONResponse({"error": f"size must be one of {', '.join(map(str, THUMBNAIL_SIZES))}"},
                            status_code=400)
    found = api.covers.lookup(entity_type, entity_id, int(size_text))
    if found is None:
        return _not_found(f"no cover for {entity_type} {entity_id}")
    etag = f'"{found.sha256[:32]}-{found.size}"'
    scope = "public" if api.config.loopback else "private"
    version = request.query_params.get("v", "")
    if len(version) >= 8 and found.sha256.startswith(version):  # this URL names this very picture
        cache = f"{scope}, max-age={LONG_MAX_AGE_S}, immutable"
    else:
        cache = f"{scope}, max-age={SHORT_MAX_AGE_S}"
    headers = {"ETag": etag, "Cache-Control": cache}
    wanted = request.headers.get("if-none-match", "")
    if wanted and (wanted.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in wanted.split(",")]):
        return Response(status_code=304, headers=headers)
    path = api.covers.file(found.relative_path)
    if path is None:
        log.error("cover row of %s %s points outside the covers store; not served", entity_type, entity_id)
        return _not_found(f"no cover for {entity_type} {entity_id}")
    try:
        content = path.read_bytes()
    except OSError:
        log.warning("cover file of %s %s is missing from the store (run a covers scan)", entity_type, entity_id)
        return _not_found(f"no cover for {entity_type} {entity_id}")
    return Response(content, media_type=found.mime, headers=headers)
