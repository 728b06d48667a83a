"""What a GraphQL request carries: its snapshot of the catalog (opened on first use) and loaders that fetch a
page's related rows in one query instead of one per row."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from contextlib import ExitStack
from typing import Any

from soniquebay_assets.api.access import CatalogAccess
from soniquebay_assets.catalog import browse


class Loader:
    """Rows by key, fetched for every key seen so far the first time one of them is asked for."""

    def __init__(self, fetch: Callable[[list], dict]) -> None:
        self._fetch = fetch
        self._cache: dict[Hashable, Any] = {}
        self._wanted: set[Hashable] = set()

    def want(self, keys: Iterable[Hashable]) -> None:
        self._wanted.update(k for k in keys if k not in self._cache)

    def get(self, key: Hashable) -> Any:
        if key not in self._cache:
            keys = list(self._wanted | {key})
            found = self._fetch(keys)
            for k in keys:
                self._cache[k] = found.get(k)
            self._wanted.clear()
        return self._cache[key]

    def get_many(self, keys: Sequence[Hashable]) -> list[Any]:
        self.want(keys)
        return [self.get(k) for k in keys]


class RequestContext:
    """One request's catalog snapshot, loaders, authorization and the warnings its answer carries."""

    def __init__(self, access: CatalogAccess, *, authorized: bool, services: Any = None) -> None:
        self.access = access
        self.authorized = authorized
        self.services = services  # the app's shared helpers (text model lock, playlist engine, ...)
        self.warnings: list[str] = []
        self._stack = ExitStack()
        self._conn: Any = None
        read = lambda fetch: Loader(lambda keys: fetch(self.conn, keys))  # noqa: E731
        self.tracks = read(browse.tracks_by_id)
        self.albums = read(browse.albums_by_id)
        self.artists = read(browse.artists_by_id)
        self.analysis = read(browse.analysis_by_track)
        self.external = read(browse.external_by_track)
        self.album_tracks = read(browse.track_ids_of_albums)
        self.album_artists = read(browse.artist_ids_of_albums)
        self.artist_albums = read(browse.album_ids_of_artists)
        self.album_covers = read(lambda conn, ids: browse.covers_of(conn, "album", ids))
        self.artist_covers = read(lambda conn, ids: browse.covers_of(conn, "artist", ids))

    @property
    def conn(self) -> Any:
        """This request's read-only snapshot of the catalog (all its statements see the same moment)."""
        if self._conn is None:
            self._conn = self._stack.enter_context(self.access.reader())
        return self._conn

    def saw_tracks(self, rows: Sequence[dict]) -> list[dict]:
        """Rows about to be answered: their analysis, albums and covers are fetched together if asked for."""
        ids = [r["track_id"] for r in rows]
        self.analysis.want(ids)
        self.external.want(ids)
        album_ids = {r["album_id"] for r in rows}
        self.albums.want(album_ids)
        self.album_covers.want(album_ids)
        return list(rows)

    def saw_albums(self, rows: Sequence[dict]) -> list[dict]:
        ids = [r["album_id"] for r in rows]
        self.album_tracks.want(ids)
        self.album_covers.want(ids)
        self.album_artists.want(ids)
        return list(rows)

    def saw_artists(self, rows: Sequence[dict]) -> list[dict]:
        ids = [r["artist_id"] for r in rows]
        self.artist_covers.want(ids)
        self.artist_albums.want(ids)
        return list(rows)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def close(self) -> None:
        self._stack.close()
