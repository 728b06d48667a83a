"""How an API process reaches the catalog: a few read-only connections reused across requests, each request
reading one snapshot, and a fresh read-write connection for the rare decision a user makes."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from soniquebay_assets.api.errors import ApiError
from soniquebay_assets.catalog import db, vectors

log = logging.getLogger("soniquebay.api")


ACQUIRE_TIMEOUT_S = 60.0


class CatalogBusy(ApiError):
    """Every reader connection stayed in use too long (the client may try again)."""


class CatalogAccess:
    """A small pool of reader connections (SQLite mode=ro with WAL: readers never wait for the scan writing)."""

    def __init__(self, catalog_url: str, size: int = 4) -> None:
        self.catalog_url = catalog_url
        self.size = size
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._opened = 0
        self._lock = threading.Lock()
        self.vector_search = True

    def prepare(self) -> None:
        """Bring the schema up to date once (migrations, WAL), before any reader opens."""
        with db.connection(self.catalog_url):
            pass

    def _open_reader(self) -> Any:
        conn = db.connect_reader(self.catalog_url)
        if self.vector_search:
            try:
                vectors.load_extension(conn)
            except vectors.VectorStoreUnavailable as exc:
                log.warning("similar-track search is off: %s", exc)
                self.vector_search = False
        return conn

    @contextmanager
    def reader(self) -> Iterator[Any]:
        """A pooled read-only connection, inside one read snapshot for the whole block."""
        conn = self._acquire()
        healthy = False
        try:
            with db.read_snapshot(conn):
                yield conn
            healthy = True
        finally:
            self._release(conn, healthy)

    def _acquire(self) -> Any:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            grow = self._opened < self.size
            if grow:
                self._opened += 1
        if grow:
            try:
                return self._open_reader()
            except BaseException:
                with self._lock:
                    self._opened -= 1
                raise
        try:
            return self._idle.get(timeout=ACQUIRE_TIMEOUT_S)
        except queue.Empty:
            raise CatalogBusy(f"all {self.size} catalog connections of this worker stayed busy for "
                              f"{ACQUIRE_TIMEOUT_S:.0f} s: try again, or start more workers") from None

    def _release(self, conn: Any, healthy: bool) -> None:
        if healthy or _still_usable(conn):
            self._idle.put(conn)
            return
        with self._lock:
            self._opened -= 1
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is dropped either way
            pass

    @contextmanager
    def writer(self) -> Iterator[Any]:
        """A read-write connection for one user decision (closed after it)."""
        with db.connection(self.catalog_url) as conn:
            yield conn

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _still_usable(conn: Any) -> bool:
    try:
        conn.execute("SELECT 1").fetchone()
        return not conn.in_transaction
    except Exception:  # noqa: BLE001 - any failure means the connection is not reused
        return False
